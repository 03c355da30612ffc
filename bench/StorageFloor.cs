using System.Diagnostics;
using System.Globalization;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Bench;

/// <summary>
/// The storage floor: what the broker's LiteDB store alone costs per transactional message, with no
/// HTTP, no channel and no other thread. One thread replays the writer's steady state: each group
/// commit inserts <c>k</c> half messages, commits the <c>k</c> of the previous batch and acks the
/// <c>k</c> before those, i.e. the same documents and index changes the broker writes under workload 1.
/// With <c>journal</c> it drives the broker's own store (the journal, and LiteDB fed by the applier
/// thread, whose CPU counts too: the run ends once LiteDB holds everything).
/// </summary>
internal static class StorageFloor
{
    public static int Run(int perBatch, int messages, int checkpointPages, int ops = 3, bool topicCounts = false, bool journal = false)
    {
        var dir = Path.Combine(Path.GetTempPath(), "halfmsg-floor-" + Guid.NewGuid().ToString("N"));
        var subscription = new Subscription("bench-consumers", "bench", TagFilter.All, null, 16, ExhaustedAction.DeadLetter, 0);
        var retention = TimeSpan.FromHours(72);
        var body = System.Text.Encoding.UTF8.GetBytes("{\"k\":1,\"pad\":\"" + new string('x', 160) + "\"}");
        try
        {
            var db = new LiteDbMessageStore(dir, Durability.Process, checkpointPages);
            using IMessageStore store = journal
                ? new JournaledMessageStore(db, Path.Combine(dir, "journal"), new StorageOptions(), e => Console.Error.WriteLine(e))
                : db;
            var halves = new Queue<StoredMessage>();
            var committed = new Queue<StoredMessage>();
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var n = 0;

            void Step()
            {
                store.RunBatch(() =>
                {
                    for (var i = 0; i < perBatch && committed.Count > 0 && ops >= 3; i++)
                    {
                        var m = committed.Dequeue();
                        DeliveryLifecycle.Ack(m.Deliveries[0], 1);
                        DeliveryLifecycle.UpdateFinished(m, now, retention);
                        store.Update(m);
                    }
                    for (var i = 0; i < perBatch && halves.Count > 0 && ops >= 2; i++)
                    {
                        var m = halves.Dequeue();
                        TransactionLifecycle.End(m, commit: true, ResolvedBy.Producer, now);
                        DeliveryLifecycle.FanOut(m, [subscription]);
                        DeliveryLifecycle.UpdateFinished(m, now, retention);
                        store.Update(m);
                        if (ops >= 3) committed.Enqueue(m);
                    }
                    for (var i = 0; i < perBatch; i++)
                    {
                        var m = new StoredMessage
                        {
                            Id = Guid.CreateVersion7(DateTimeOffset.FromUnixTimeMilliseconds(now)),
                            Topic = "bench",
                            Tag = "bench",
                            Body = body,
                            BornAt = now,
                            ProducerGroup = "bench-producers",
                            TransactionId = "tx-" + n++.ToString(CultureInfo.InvariantCulture),
                            State = MessageState.Prepared,
                            NextCheckAt = now + 60_000,
                        };
                        store.Insert(m);
                        if (ops >= 2) halves.Enqueue(m);
                    }
                    if (topicCounts) store.AddToTopicCounts(new Dictionary<string, long> { ["bench"] = perBatch });
                });
                now++;
            }

            // Warm the JIT and grow the indexes a little before measuring.
            for (var i = 0; i < 30_000 / perBatch; i++) Step();
            var process = Process.GetCurrentProcess();
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            var alloc0 = GC.GetTotalAllocatedBytes();
            var gc0 = GC.CollectionCount(0);
            var wall = Stopwatch.StartNew();
            var batches = messages / perBatch;
            var slowest = TimeSpan.Zero;
            for (var i = 0; i < batches; i++)
            {
                var started = Stopwatch.GetTimestamp();
                Step();
                var took = Stopwatch.GetElapsedTime(started);
                if (took > slowest) slowest = took;
            }
            if (journal) store.DuePurges(0, 1); // waits until LiteDB holds every journaled change
            wall.Stop();
            process.Refresh();
            var cpuUs = (process.TotalProcessorTime - cpu0).TotalMicroseconds / (batches * perBatch);
            var allocKb = (GC.GetTotalAllocatedBytes() - alloc0) / 1024.0 / (batches * perBatch);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"storage floor{(journal ? " (journal + applier)" : "")}: {perBatch} messages per batch ({perBatch * 3} document writes), {batches * perBatch} messages: " +
                $"{cpuUs:F0} µs CPU per message (insert + commit + ack), {batches * perBatch / wall.Elapsed.TotalSeconds:F0} msg/s on one thread, " +
                $"{allocKb:F0} KB allocated per message, {GC.CollectionCount(0) - gc0} gen0 GCs; slowest batch {slowest.TotalMilliseconds:F0} ms; checkpoint every {checkpointPages} pages"));
            return 0;
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
