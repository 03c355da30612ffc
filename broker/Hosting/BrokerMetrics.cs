using System.Diagnostics.Metrics;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// The broker's own instruments (meter <c>HalfMsgBroker</c>), readable with
/// <c>dotnet-counters monitor -n HalfMsgBroker.Broker --counters HalfMsgBroker</c> or any OpenTelemetry exporter.
/// </summary>
internal static class BrokerMetrics
{
    public static readonly Meter Meter = new("HalfMsgBroker", "1.0");

    public static readonly Counter<long> StoreCommands = Meter.CreateCounter<long>("halfmsg.store.commands", description: "Changes applied by the single writer");
    public static readonly Histogram<int> StoreBatchSize = Meter.CreateHistogram<int>("halfmsg.store.batch_size", description: "Changes per group commit");
    public static readonly Histogram<double> StoreCommitMs = Meter.CreateHistogram<double>("halfmsg.store.commit_ms", "ms", "Duration of one group commit, fsync included");
    public static readonly Histogram<int> StoreApplyDocuments = Meter.CreateHistogram<int>("halfmsg.store.apply_documents", description: "Documents one apply writes to LiteDB, after coalescing");
    public static readonly Histogram<double> StoreApplyMs = Meter.CreateHistogram<double>("halfmsg.store.apply_ms", "ms", "Duration of one apply of journaled changes to LiteDB");
    public static readonly UpDownCounter<long> StorageQuarantined = Meter.CreateUpDownCounter<long>(
        "halfmsg.storage.quarantined", description: "Files in journal/quarantine/ (damaged segments, changes LiteDB refused) until an operator clears them");
    public static readonly Counter<long> PushAttempts = Meter.CreateCounter<long>("halfmsg.push.attempts", description: "Push requests sent");
    public static readonly Counter<long> PushFailures = Meter.CreateCounter<long>("halfmsg.push.failures", description: "Push requests that failed (non-2xx, timeout, connection error)");
    public static readonly Counter<long> Checks = Meter.CreateCounter<long>("halfmsg.checks", description: "Check-back requests sent");

    /// <summary>
    /// Gauges of the data folder's free space, on the host's own meter (so each host, and each test
    /// host, reports its own monitor) under the same meter name as the instruments above.
    /// </summary>
    public static void ObserveDiskSpace(IMeterFactory factory, DiskSpace.DiskSpaceMonitor monitor)
    {
        var meter = factory.Create(Meter.Name, Meter.Version);
        meter.CreateObservableGauge("halfmsg.storage.free_bytes", () => monitor.FreeBytes == long.MaxValue ? 0 : monitor.FreeBytes, "By",
            "Free bytes on the data folder's filesystem at the last check");
        meter.CreateObservableGauge("halfmsg.storage.disk_low", () => monitor.IsLow ? 1 : 0,
            description: "1 while free space is below Broker:Storage:MinFreeBytes and new messages are refused with 507");
    }
}
