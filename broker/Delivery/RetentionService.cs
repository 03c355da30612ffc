using HalfMsgBroker.Cluster;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Delivery;

/// <summary>
/// Keeps storage bounded: deletes finished messages (acked, discarded, rolled back) once their
/// retention ran out, and gives up dead letters older than <c>Broker:Retention:DeadLetters</c>
/// (their messages then finish and are purged in turn). Both are read from an index ordered by due
/// time (the purge range of the due-time index; the dead-letter index by dead-lettering time) and
/// changed in small batches through the single writer, so live traffic never waits behind a big delete.
/// With many active brokers on one database the sweep runs on the holder of its lease only (<see cref="ISweepLease"/>).
/// </summary>
internal sealed class RetentionService(
    IDueTimes store, StoreWriter writer, IOptions<BrokerOptions> options, TimeProvider time, ILogger<RetentionService> logger, ISweepLease lease)
    : BackgroundService
{
    private const int BatchSize = 256;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.RetentionSweepInterval;
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            do
            {
                try
                {
                    if (!await lease.HoldAsync(Sweeps.Retention, stoppingToken)) continue;
                    await ExpireDeadLettersAsync(stoppingToken);
                    await PurgeDueAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogError(e, "Retention sweep failed; trying again at the next tick");
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task ExpireDeadLettersAsync(CancellationToken cancellationToken)
    {
        var before = time.GetUtcNow().ToUnixTimeMilliseconds() - (long)options.Value.DeadLetterRetention.TotalMilliseconds;
        while (true)
        {
            var due = store.ExpiredDeadLetters(before, BatchSize);
            if (due.Count == 0) return;
            var settled = await writer.Submit(new ExpireDeadLetters(due, before), cancellationToken);
            logger.LogDebug("Retention gave up {Count} expired dead letters", settled);
            // Nothing settled means the same entries would come back at once: leave them to the next sweep.
            if (due.Count < BatchSize || settled == 0) return;
        }
    }

    private async Task PurgeDueAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var due = store.DuePurges(time.GetUtcNow().ToUnixTimeMilliseconds(), BatchSize);
            if (due.Count == 0) return;
            var purged = await writer.Submit(new PurgeMessages(due), cancellationToken);
            logger.LogDebug("Retention purged {Count} messages", purged);
            if (due.Count < BatchSize) return;
        }
    }
}
