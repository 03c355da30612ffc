using HalfMsgBroker.Delivery;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// Rebuilds the in-memory side from storage before the broker takes traffic: subscriptions, and
/// every delivery still to make. Deliveries that were in flight when the broker stopped are simply
/// ready again (at least once). Only what delivery needs is loaded (ids, groups, attempts, due
/// times): a body is read from the store when its delivery is handed out. Prepared messages need
/// nothing: their due times are in the index, and none of them is read.
/// </summary>
internal sealed class Recovery(
    IMessageLog log, IDueTimes due, DeliveryRegistry registry, StoreWriter writer, BrokerReadiness readiness, TimeProvider time, ILogger<Recovery> logger)
    : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        foreach (var subscription in log.Subscriptions()) registry.Upsert(subscription);

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var restored = 0;
        var orphans = new Dictionary<string, List<Guid>>(StringComparer.Ordinal);
        // The open range is in id (birth) order; a key's deliveries must go back in commit order, so keyed ones are sorted first.
        var keyed = new List<(long Seq, SubscriptionQueue Queue, Guid Id, int Attempts, long Due, string Key)>();
        foreach (var message in due.OpenMessages())
        {
            foreach (var d in message.Deliveries)
            {
                if (d.State.IsTerminal()) continue;
                var queue = registry.Find(d.Group, message.Topic);
                if (queue is null)
                {
                    (orphans.TryGetValue(d.Group, out var ids) ? ids : orphans[d.Group] = []).Add(message.Id);
                    continue;
                }
                var due = Math.Max(d.NextAttemptAt, message.DeliverAt);
                if (message.OrderingKey is { } key) keyed.Add((message.CommitSeq, queue, message.Id, d.Attempts, due, key));
                else queue.Add(message.Id, d.Attempts, due, payload: null, now);
                restored++;
            }
        }
        keyed.Sort((a, b) => a.Seq != b.Seq ? a.Seq.CompareTo(b.Seq) : a.Id.CompareTo(b.Id));
        foreach (var (seq, queue, id, attempts, due, key) in keyed) queue.Add(id, attempts, due, payload: null, now, key, seq);
        foreach (var (group, ids) in orphans)
        {
            foreach (var chunk in ids.Chunk(500)) writer.Post(new DropDeliveries(group, chunk));
        }

        readiness.MarkReady();
        var gc = GC.GetGCMemoryInfo();
        logger.LogInformation(
            "Recovered {Deliveries} deliveries in {Elapsed:F0} ms (managed heap {HeapMiB:F0} MiB, process {ProcessMiB:F0} MiB)",
            restored, time.GetElapsedTime(started).TotalMilliseconds, gc.HeapSizeBytes / 1048576.0, Environment.WorkingSet / 1048576.0);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
