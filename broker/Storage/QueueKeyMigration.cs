using System.Diagnostics;
using HalfMsgBroker.Lifecycle;
using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>
/// Rewrites, once, the queue entries of messages stored before 2026-11-30, when open messages were all
/// filed under one key (<c>o</c>) and a commit left a message under its check time (<c>c:</c>). Now an
/// open message is filed under <c>o:&lt;id&gt;</c> (unique, so recovery reads it in chunks) and the check
/// range holds only prepared messages (so recovery reads none of them). Old entries cannot be told from
/// prepared ones without reading each document, so the first start reads every message once, in id
/// order and in chunks (each its own transaction, so a crash resumes harmlessly), then records that it
/// is done; later starts, and new data files, only read that record.
/// </summary>
internal static class QueueKeyMigration
{
    private const string DoneId = "queueKeysV2";
    private const int Chunk = 2000;

    public static void Run(LiteDatabase db, ILiteCollection<BsonDocument> messages, ILiteCollection<BsonDocument> meta, Action<string>? notice)
    {
        if (meta.FindById(DoneId) is not null) return;
        if (messages.Find(Query.All(), 0, 1).Any())
        {
            notice?.Invoke("Rewriting the queue entries of open and committed messages once, so that recovery reads neither prepared messages "
                + "nor bodies; this reads every stored message once (minutes with millions), and the HTTP port opens only after it.");
            var started = Stopwatch.GetTimestamp();
            var (read, rewritten) = RewriteAll(db, messages);
            notice?.Invoke($"Read {read} messages and rewrote the queue entries of {rewritten} in {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s.");
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
                    if (!IsLegacy(doc)) continue;
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

    private static bool IsLegacy(BsonDocument doc)
    {
        if (!doc.TryGetValue(MessageCodec.QueueField, out var q) || !q.IsString) return false;
        var key = q.AsString;
        return key == MessageCodec.LegacyOpen
               || (key.StartsWith(MessageCodec.CheckPrefix, StringComparison.Ordinal) && doc["s"].AsInt32 != (int)MessageState.Prepared);
    }
}
