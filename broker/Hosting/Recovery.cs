using HalfMsgBroker.Delivery;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// Rebuilds the in-memory side from storage before the broker takes traffic: subscriptions, and
/// every delivery still to make (<see cref="ILiveDeliveries.Recover"/>; deliveries that were in flight
/// when the broker stopped are simply ready again, at least once). Prepared messages need
/// nothing: their due times are in the index, and none of them is read.
/// </summary>
internal sealed class Recovery(
    IMessageLog log, IDueTimes due, DeliveryRegistry registry, ILiveDeliveries live, StoreWriter writer, BrokerReadiness readiness, TimeProvider time, ILogger<Recovery> logger)
    : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        foreach (var subscription in log.Subscriptions()) registry.Upsert(subscription);

        var orphans = new Dictionary<string, List<Guid>>(StringComparer.Ordinal);
        var restored = live.Recover(due, orphans);
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
