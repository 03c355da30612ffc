using System.Diagnostics;
using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>
/// Rewrites, once, the messages stored before listings paged inside LiteDB (2026-11-30). Their
/// <c>lk</c> entries were <c>k:&lt;key&gt;</c> and <c>d:&lt;group&gt;</c>, in no useful order; now a key's
/// entry ends in the message id, and dead letters have their own collection. Only messages with keys
/// or dead letters have such entries, and each rewrite drops them, so the work is found through the
/// index, resumes where a crash left it, and finds nothing once done (one index seek per start).
/// </summary>
internal static class LookupMigration
{
    private const int Chunk = 1000;

    public static void Run(LiteDatabase db, ILiteCollection<BsonDocument> messages, ILiteCollection<BsonDocument> deadLetters, Action<string>? notice)
    {
        var ids = NextChunk(messages);
        if (ids.Count == 0) return;

        notice?.Invoke("Rewriting the lookup entries of stored messages with keys or dead letters once, so that listings page inside the store. "
            + "With millions of keyed messages this takes minutes, and the HTTP port opens only after it.");
        var started = Stopwatch.GetTimestamp();
        var rewritten = 0;
        while (ids.Count > 0)
        {
            db.BeginTrans();
            try
            {
                foreach (var id in ids)
                {
                    if (messages.FindById(id) is not { } doc) continue;
                    var message = MessageCodec.FromBson(doc);
                    messages.Update(MessageCodec.ToBson(message));
                    foreach (var (deadLetter, at) in DeadLetterCodec.Of(message)) deadLetters.Upsert(DeadLetterCodec.ToBson(deadLetter, at));
                }
                db.Commit();
            }
            catch
            {
                db.Rollback();
                throw;
            }
            rewritten += ids.Count;
            ids = NextChunk(messages);
        }
        notice?.Invoke($"Rewrote the lookup entries of {rewritten} messages in {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s.");
    }

    // A message with both kinds of entry is found in both ranges.
    private static List<BsonValue> NextChunk(ILiteCollection<BsonDocument> messages) => LegacyIds(messages).Distinct().Take(Chunk).ToList();

    private static IEnumerable<BsonValue> LegacyIds(ILiteCollection<BsonDocument> messages)
    {
        foreach (var (from, to) in MessageCodec.LegacyLookupRanges)
        {
            var range = BsonExpression.Create("$." + MessageCodec.LookupField + "[*] ANY BETWEEN @0 AND @1", new BsonValue(from), new BsonValue(to));
            foreach (var doc in messages.Query().Where(range).Select("$._id").ToEnumerable()) yield return doc.Values.Single();
        }
    }
}
