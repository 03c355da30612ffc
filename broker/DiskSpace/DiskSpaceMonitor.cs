using HalfMsgBroker.Configuration;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.DiskSpace;

/// <summary>
/// Watches the free space of the data folder's filesystem every <c>Storage:FreeSpaceCheckInterval</c>
/// (one <c>statvfs</c> a second, never one per request). Below <c>Storage:MinFreeBytes</c> the broker
/// refuses new messages (see <see cref="DiskSpaceGate"/>) and keeps settling the ones it holds, the
/// way RabbitMQ's disk alarm blocks publishers and keeps consumers going.
/// </summary>
internal sealed class DiskSpaceMonitor(IFreeSpace freeSpace, TimeProvider time, IOptions<BrokerOptions> options, IHostEnvironment environment, ILogger<DiskSpaceMonitor> logger)
    : BackgroundService
{
    // The PostgreSQL provider keeps nothing in the data folder: its disk is the database server's.
    private readonly long _minFree = options.Value.Storage.Provider == StorageProvider.PostgreSql ? 0 : options.Value.Storage.MinFreeBytes;
    private readonly string _folder = Path.IsPathRooted(options.Value.DataPath)
        ? options.Value.DataPath
        : Path.Combine(environment.ContentRootPath, options.Value.DataPath);
    private long _freeBytes = long.MaxValue;
    private volatile bool _low;

    /// <summary>Free bytes at the last check (long.MaxValue before the first one).</summary>
    public long FreeBytes => Interlocked.Read(ref _freeBytes);

    public long MinFreeBytes => _minFree;

    public bool IsLow => _low;

    public string LowDetail =>
        $"The broker's data folder has {Mib(FreeBytes)} free, below Broker:Storage:MinFreeBytes ({Mib(_minFree)}): new messages " +
        "are refused until space is freed, while commits, rollbacks, acks and nacks go on so the backlog can shrink. " +
        "Free disk space (or consume the backlog) and retry; the broker accepts messages again within a second.";

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // The first reading before the broker takes requests, so a full disk is refused from the first send.
        Check();
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.Storage.FreeSpaceCheckInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken)) Check();
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private void Check()
    {
        if (_minFree <= 0) return;
        long free;
        try
        {
            free = freeSpace.AvailableBytes(_folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            // Unknown is not low: a failed reading must not stop a broker whose disk may be fine.
            logger.LogWarning(e, "Reading the free space of {Folder} failed; keeping the last reading", _folder);
            return;
        }
        Interlocked.Exchange(ref _freeBytes, free);
        var low = free < _minFree;
        if (low == _low) return;
        _low = low;
        if (low) logger.LogWarning("Disk space low on {Folder}: {Free} free, below Broker:Storage:MinFreeBytes {Min}; refusing new messages", _folder, Mib(free), Mib(_minFree));
        else logger.LogInformation("Disk space on {Folder} is back above Broker:Storage:MinFreeBytes: {Free} free; accepting new messages", _folder, Mib(free));
    }

    private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024):F0} MiB ({bytes} bytes)";
}
