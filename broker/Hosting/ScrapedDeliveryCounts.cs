using HalfMsgBroker.Delivery;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// The delivery counts of every subscription, read once for the three per-subscription gauges of a scrape (ready,
/// in flight, retrying) instead of once per gauge: with <c>MultiActive</c> each reading is a query, so a scrape
/// cost three per subscription. A reading serves for <c>Broker:Telemetry:DeliveryFiguresMaxAge</c> (1 s), unless
/// the subscriptions changed since, so a subscription created or deleted shows at the next scrape.
/// </summary>
internal sealed class ScrapedDeliveryCounts(DeliveryRegistry registry, IDeliveryFigures figures, TimeProvider time, TimeSpan maxAge)
{
    private readonly Lock _gate = new();
    private Dictionary<(string Group, string Topic), QueueCounts> _counts = [];
    private long _readAt;
    private bool _read;

    /// <summary>Every subscription's counts, read now or at most <c>maxAge</c> ago.</summary>
    public IReadOnlyDictionary<(string Group, string Topic), QueueCounts> Current()
    {
        // Under the lock: listeners observing at once read the figures once between them.
        lock (_gate)
        {
            var queues = registry.All.ToList();
            if (_read && time.GetElapsedTime(_readAt) < maxAge && queues.Count == _counts.Count
                && queues.All(q => _counts.ContainsKey((q.Group, q.Topic))))
            {
                return _counts;
            }
            var counts = new Dictionary<(string Group, string Topic), QueueCounts>(queues.Count);
            foreach (var queue in queues) counts[(queue.Group, queue.Topic)] = figures.Counts(queue.Group, queue.Topic);
            _counts = counts;
            _readAt = time.GetTimestamp();
            _read = true;
            return counts;
        }
    }
}
