using HalfMsgBroker.Cluster;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Access;

/// <summary>
/// Writes the keys' last-used times in batches and drops audit entries past their retention. Each
/// tick is guarded on its own, so one failed write does not stop the loop; last-used times are
/// written once more at shutdown.
/// The audit purge runs on one broker of a cluster (<see cref="ISweepLease"/>); every broker flushes its own keys' last uses.
/// </summary>
internal sealed class AccessMaintenanceService(
    ApiKeyRegistry keys, IAccessStore store, IOptions<AuthOptions> options, TimeProvider time, ILogger<AccessMaintenanceService> logger, ISweepLease lease)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        using var timer = new PeriodicTimer(o.LastUsedFlushInterval, time);
        var nextPurge = 0L;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    keys.FlushLastUsed();
                    var now = time.GetUtcNow().ToUnixTimeMilliseconds();
                    if (now >= nextPurge && await lease.HoldAsync(Sweeps.AuditPurge, stoppingToken))
                    {
                        var purged = store.PurgeAudit(now - (long)o.AuditRetention.TotalMilliseconds);
                        if (purged > 0) logger.LogInformation("Dropped {Count} audit entries older than {Retention}", purged, o.AuditRetention);
                        nextPurge = now + (long)Math.Min(60_000, o.AuditRetention.TotalMilliseconds);
                    }
                }
                catch (Exception e)
                {
                    logger.LogError(e, "Access maintenance failed; retrying at the next tick");
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        try
        {
            keys.FlushLastUsed();
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Writing the keys' last-used times at shutdown failed");
        }
    }
}
