using System.Diagnostics;
using HalfMsgBroker.Lifecycle;
using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>
/// One-time rewrites of messages stored by an older broker, each recorded as done in <c>meta</c> so later
/// starts, and new data files, only read those records. A message that needs one is simply re-encoded
/// (<see cref="MessageCodec"/> writes today's fields). The pending ones share a single pass that reads
/// every message once, in id order and in chunks (each its own transaction, so a crash resumes harmlessly):
/// with millions of messages that pass takes minutes, and an upgrade should pay for it once, not once per
/// migration.
/// </summary>
internal static class StoredMessageMigrations
{
    private const int Chunk = 2000;

    private sealed record Migration(string DoneId, string Purpose, Func<long, string> Result, Func<BsonDocument, bool> Needs);

    private static readonly Migration[] All =
    [
        // Before 2026-11-30 open messages were all filed under one key ("o") and a commit left a message
        // under its check time ("c:"). Now an open message is filed under "o:<id>" (unique, so recovery reads
        // it in chunks) and the check range holds only prepared messages (so recovery reads none of them).
        new("queueKeysV2",
            "the queue entries of open and committed messages, so that recovery reads neither prepared messages nor bodies",
            n => $"rewrote the queue entries of {n}",
            IsLegacyQueueEntry),
        // Committed messages stored before the commit-time index existed: a replay walks that index.
        new("replayKeysV1",
            "the commit-time index entries of committed messages (what a replay walks)",
            n => $"added {n} to the commit-time index",
            doc => !doc.ContainsKey(MessageCodec.ReplayField) && doc["s"].AsInt32 == (int)MessageState.Committed),
    ];

    public static void Run(LiteDatabase db, ILiteCollection<BsonDocument> messages, ILiteCollection<BsonDocument> meta, Action<string>? notice)
    {
        var pending = All.Where(m => meta.FindById(m.DoneId) is null).ToArray();
        if (pending.Length == 0) return;
        if (messages.Find(Query.All(), 0, 1).Any())
        {
            notice?.Invoke($"Rewriting once {string.Join(" and ", pending.Select(m => m.Purpose))}; this reads every stored message once "
                + "(minutes with millions), and the HTTP port opens only after it.");
            var started = Stopwatch.GetTimestamp();
            var (read, rewritten) = RewriteAll(db, messages, pending);
            notice?.Invoke($"Read {read} messages and {string.Join(" and ", pending.Select((m, i) => m.Result(rewritten[i])))} "
                + $"in {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s.");
        }
        foreach (var migration in pending)
        {
            meta.Upsert(new BsonDocument { ["_id"] = migration.DoneId, ["v"] = true });
        }
    }

    private static (long Read, long[] Rewritten) RewriteAll(LiteDatabase db, ILiteCollection<BsonDocument> messages, Migration[] pending)
    {
        long read = 0;
        var rewritten = new long[pending.Length];
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
                    var needed = false;
                    for (var i = 0; i < pending.Length; i++)
                    {
                        if (!pending[i].Needs(doc)) continue;
                        rewritten[i]++;
                        needed = true;
                    }
                    if (needed) messages.Update(MessageCodec.ToBson(MessageCodec.FromBson(doc)));
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

    private static bool IsLegacyQueueEntry(BsonDocument doc)
    {
        if (!doc.TryGetValue(MessageCodec.QueueField, out var q) || !q.IsString) return false;
        var key = q.AsString;
        return key == MessageCodec.LegacyOpen
               || (key.StartsWith(MessageCodec.CheckPrefix, StringComparison.Ordinal) && doc["s"].AsInt32 != (int)MessageState.Prepared);
    }
}
