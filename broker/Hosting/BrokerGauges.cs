using System.Diagnostics.Metrics;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// The gauges of the broker's state, on <see cref="BrokerMetrics.Meter"/>. Each reads in-memory figures
/// (the journal's sequence numbers), the delivery counts of <see cref="IDeliveryFigures"/> once per scrape
/// (<see cref="ScrapedDeliveryCounts"/>; with <c>MultiActive</c> they are queries) or <see cref="StoreFigures"/>' cached
/// reading. Made once the broker has recovered (a hosted service after
/// <see cref="Recovery"/>), so the queues it reads are the rebuilt ones.
/// </summary>
internal sealed class BrokerGauges : IHostedService
{
    private readonly ScrapedDeliveryCounts _counts;
    private readonly StoreFigures _figures;
    private readonly TimeProvider _time;

    public BrokerGauges(
        BrokerMetrics metrics, IStoreMonitoring store, DeliveryRegistry registry, IDeliveryFigures live, TimeProvider time,
        IOptions<TelemetryOptions> options, ILogger<BrokerGauges> logger)
    {
        _counts = new ScrapedDeliveryCounts(registry, live, time, options.Value.DeliveryFiguresMaxAge);
        _time = time;
        _figures = new StoreFigures(store, registry, time, options.Value.StoreFiguresMaxAge, logger);
        var meter = metrics.Meter;

        meter.CreateObservableGauge("halfmsg.subscription.ready", () => PerSubscription(c => c.Ready),
            description: "Deliveries ready to hand out, per subscription (consumer_group, topic)");
        meter.CreateObservableGauge("halfmsg.subscription.in_flight", () => PerSubscription(c => c.InFlight),
            description: "Deliveries handed out and not yet settled, per subscription");
        meter.CreateObservableGauge("halfmsg.subscription.retrying", () => PerSubscription(c => c.Retrying),
            description: "Deliveries waiting for their retry backoff (or delay), per subscription");
        meter.CreateObservableGauge("halfmsg.subscription.dead_lettered", DeadLettered,
            description: "Dead letters per subscription (read from the store at most once per Broker:Telemetry:StoreFiguresMaxAge)");
        meter.CreateObservableGauge("halfmsg.transactions.prepared", () => _figures.Current.Prepared,
            description: "Half messages neither committed nor rolled back (read from the store at most once per StoreFiguresMaxAge)");
        meter.CreateObservableGauge("halfmsg.transactions.oldest_prepared_age", OldestPreparedAge, "s",
            "Age of the oldest half message still prepared; 0 when none is");

        if (store is JournaledMessageStore journaled)
        {
            meter.CreateObservableGauge("halfmsg.journal.apply_lag_frames", () => journaled.ApplyLagFrames,
                description: "Journal frames LiteDB does not hold yet (the apply runs every Broker:Storage:ApplyDelay)");
            meter.CreateObservableGauge("halfmsg.journal.unapplied_changes", () => journaled.UnappliedCount,
                description: "Journaled changes waiting for the apply; group commits wait at Broker:Storage:MaxUnappliedChanges");
            meter.CreateObservableUpDownCounter("halfmsg.storage.quarantined", () => journaled.QuarantinedCount,
                description: "Files in journal/quarantine/ (damaged segments, changes LiteDB refused) until an operator clears them");
        }
    }

    /// <summary>Gauges of the data folder's free space (see <see cref="DiskSpace.DiskSpaceMonitor"/>).</summary>
    public static void ObserveDiskSpace(Meter meter, DiskSpace.DiskSpaceMonitor monitor)
    {
        meter.CreateObservableGauge("halfmsg.storage.free_bytes", () => monitor.FreeBytes == long.MaxValue ? 0 : monitor.FreeBytes, "By",
            "Free bytes on the data folder's filesystem at the last check");
        meter.CreateObservableGauge("halfmsg.storage.disk_low", () => monitor.IsLow ? 1 : 0,
            description: "1 while free space is below Broker:Storage:MinFreeBytes and new messages are refused with 507");
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private IEnumerable<Measurement<int>> PerSubscription(Func<QueueCounts, int> figure)
    {
        foreach (var ((group, topic), counts) in _counts.Current())
        {
            yield return new Measurement<int>(figure(counts), Tags(group, topic));
        }
    }

    private IEnumerable<Measurement<int>> DeadLettered()
    {
        foreach (var (group, topic, count) in _figures.Current.DeadLetters)
        {
            yield return new Measurement<int>(count, Tags(group, topic));
        }
    }

    private double OldestPreparedAge() => _figures.Current.OldestPreparedBornAt is { } bornAt
        ? Math.Max(0, _time.GetUtcNow().ToUnixTimeMilliseconds() - bornAt) / 1000.0
        : 0;

    private static KeyValuePair<string, object?>[] Tags(string group, string topic) =>
        [new("consumer_group", group), new("topic", topic)];
}
