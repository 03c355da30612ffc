using System.Diagnostics;
using HalfMsgBroker.Lifecycle;
using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>
/// Gives committed messages stored before 2026-11-30 their entry in the commit-time index
/// (<see cref="MessageCodec.ReplayField"/>), so a replay finds them too. The first start reads every
/// message once, in id order and in chunks (each its own transaction, so a crash resumes harmlessly),
/// rewrites the committed ones that lack the entry, then records that it is done; later starts, and
/// new data files, only read that record.
/// </summary>
internal static class ReplayKeyMigration
{
    private const string DoneId = "replayKeysV1";
    private const int Chunk = 2000;

    public static void Run(LiteDatabase db, ILiteCollection<BsonDocument> messages, ILiteCollection<BsonDocument> meta, Action<string>? notice)
    {
        if (meta.FindById(DoneId) is not null) return;
        if (messages.Find(Query.All(), 0, 1).Any())
        {
            notice?.Invoke("Adding committed messages to the commit-time index once (what a replay walks); this reads every stored message "
                + "once (minutes with millions), and the HTTP port opens only after it.");
            var started = Stopwatch.GetTimestamp();
            var (read, rewritten) = RewriteAll(db, messages);
            notice?.Invoke($"Read {read} messages and added {rewritten} to the commit-time index in {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s.");
        }
        meta.Upsert(new BsonDocument { ["_id"] = DoneId, ["v"] = true });
    }

    private static (long Read, long Rewritten) RewriteAll(LiteDatabase db, ILiteCollection<BsonDocument> messages)
    {
        long read = 0, rewritten = 0;
        var after = new BsonValue(Guid.Empty);
        while (true)
        {
            // Its own transaction per chunk: LiteDB keeps the pages a transaction reads until it ends.
            db.BeginTrans();
            List<BsonDocument> chunk;
            try
            {
                chunk = messages.Find(Query.GT("_id", after), 0, Chunk).ToList();
                foreach (var doc in chunk)
                {
                    if (doc.ContainsKey(MessageCodec.ReplayField) || doc["s"].AsInt32 != (int)MessageState.Committed) continue;
                    messages.Update(MessageCodec.ToBson(MessageCodec.FromBson(doc)));
                    rewritten++;
                }
                db.Commit();
            }
            catch
            {
                db.Rollback();
                throw;
            }
            read += chunk.Count;
            if (chunk.Count < Chunk) return (read, rewritten);
            after = chunk[^1]["_id"];
        }
    }
}
