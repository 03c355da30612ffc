using HalfMsgBroker.Delivery;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Hosting;

/// <summary>What the gauges report that only the store knows, as of <see cref="TakenAt"/>.</summary>
internal sealed record StoreFigureSnapshot(
    long TakenAt,
    int Prepared,
    long? OldestPreparedBornAt,
    IReadOnlyList<(string Group, string Topic, int Count)> DeadLetters)
{
    public static readonly StoreFigureSnapshot None = new(0, 0, null, []);
}

/// <summary>
/// The figures a metrics scrape needs from the store (prepared transactions and the oldest's birth,
/// dead letters per subscription), read at most once per <c>Broker:Telemetry:StoreFiguresMaxAge</c>
/// and only when someone reads them: a scrape gets the last reading at once and, when it is stale,
/// starts one new reading in the background. No scrape ever waits on a store query.
/// </summary>
internal sealed class StoreFigures(IStoreMonitoring store, DeliveryRegistry registry, TimeProvider time, TimeSpan maxAge, ILogger logger)
{
    private StoreFigureSnapshot _current = StoreFigureSnapshot.None;
    private int _refreshing;

    public StoreFigureSnapshot Current
    {
        get
        {
            var current = Volatile.Read(ref _current);
            var now = time.GetUtcNow().ToUnixTimeMilliseconds();
            if (now - current.TakenAt >= maxAge.TotalMilliseconds && Interlocked.CompareExchange(ref _refreshing, 1, 0) == 0)
            {
                _ = Task.Run(Refresh);
            }
            return current;
        }
    }

    private void Refresh()
    {
        try
        {
            var prepared = 0;
            long? oldest = null;
            // The walk keeps nothing (the filter says no to each): it only counts and remembers the oldest birth.
            store.Transactions(MessageState.Prepared, null, null, null, 1, m =>
            {
                prepared++;
                if (oldest is null || m.BornAt < oldest) oldest = m.BornAt;
                return false;
            });
            var deadLetters = registry.All
                .Select(q => (q.Group, q.Topic, store.CountDeadLetters(q.Group, q.Topic)))
                .ToList();
            Volatile.Write(ref _current, new StoreFigureSnapshot(time.GetUtcNow().ToUnixTimeMilliseconds(), prepared, oldest, deadLetters));
        }
        catch (Exception e)
        {
            // The gauges keep their last reading; readiness and the store's own logs say what is wrong.
            logger.LogDebug(e, "Reading the store's figures for the metrics failed");
        }
        finally
        {
            Volatile.Write(ref _refreshing, 0);
        }
    }
}
