using System.Collections.Concurrent;
using System.Collections.Frozen;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Delivery;

/// <summary>
/// The in-memory side of consumption: every subscription's queue of live deliveries. On one broker,
/// subscriptions change only through the writer's after-commit effects, so fan-out inside the writer
/// always sees the subscriptions that existed when a message was committed. With many active brokers,
/// reloads of the others' changes and adoptions of subscriptions not heard of yet change them too
/// (<see cref="Cluster.StoredSubscriptions"/>), and fan-out reads the store instead.
/// </summary>
internal sealed class DeliveryRegistry
{
    private readonly ConcurrentDictionary<(string Group, string Topic), SubscriptionQueue> _queues = new();
    private volatile FrozenDictionary<string, Subscription[]> _byTopic = FrozenDictionary<string, Subscription[]>.Empty;
    private readonly DueScheduler _scheduler;
    private readonly TimeProvider _time;
    private readonly Func<IDeliveryRecorder> _recorder;
    private readonly Lock _rebuilding = new();

    public DeliveryRegistry(DueScheduler scheduler, TimeProvider time, IOptions<BrokerOptions> options, IServiceProvider services)
    {
        _scheduler = scheduler;
        _time = time;
        Budget = new PayloadBudget(options.Value.Delivery.MaxCachedPayloadBytes);
        _recorder = services.GetRequiredService<IDeliveryRecorder>;
    }

    public PayloadBudget Budget { get; }

    /// <summary>Raised when a subscription is created, changed, removed or adopted (writer, reload or request thread).</summary>
    public event Action<SubscriptionQueue>? QueueChanged;

    public IReadOnlyList<Subscription> SubscriptionsOf(string topic) =>
        _byTopic.TryGetValue(topic, out var subs) ? subs : [];

    public SubscriptionQueue? Find(string group, string topic) => _queues.GetValueOrDefault((group, topic));

    public IEnumerable<SubscriptionQueue> QueuesOf(string group) =>
        _queues.Where(q => q.Key.Group == group).Select(q => q.Value).OrderBy(q => q.Topic, StringComparer.Ordinal);

    public IEnumerable<SubscriptionQueue> All => _queues.Values;

    public void Upsert(Subscription subscription)
    {
        var queue = _queues.AddOrUpdate(
            (subscription.Group, subscription.Topic),
            _ => new SubscriptionQueue(subscription, _scheduler, Budget, _recorder),
            (_, existing) =>
            {
                existing.Subscription = subscription;
                return existing;
            });
        RebuildTopics();
        QueueChanged?.Invoke(queue);
    }

    /// <summary>
    /// Adds a subscription read from the store that this broker had not heard of (<c>MultiActive</c>), unless a queue for
    /// it appeared meanwhile: that one came from a change this broker stored or heard since the read, so it is not older.
    /// </summary>
    /// <returns>The queue now in the registry, and whether it is the one just added.</returns>
    public (SubscriptionQueue Queue, bool Added) Adopt(Subscription subscription)
    {
        var fresh = new SubscriptionQueue(subscription, _scheduler, Budget, _recorder);
        var queue = _queues.GetOrAdd((subscription.Group, subscription.Topic), fresh);
        if (!ReferenceEquals(queue, fresh)) return (queue, false);
        RebuildTopics();
        QueueChanged?.Invoke(queue);
        return (queue, true);
    }

    /// <summary>Removes a subscription's queue; returns the ids of the deliveries it still held.</summary>
    public List<Guid> Remove(string group, string topic)
    {
        if (!_queues.TryRemove((group, topic), out var queue)) return [];
        var ids = queue.Close();
        RebuildTopics();
        QueueChanged?.Invoke(queue);
        return ids;
    }

    /// <summary>Makes a stored delivery live: ready now, or at its due time.</summary>
    public void Enqueue(string group, string topic, Guid messageId, int attempts, long dueAt, MessagePayload? payload, string? orderingKey = null, long commitSeq = 0)
    {
        Find(group, topic)?.Add(messageId, attempts, dueAt, payload, _time.GetUtcNow().ToUnixTimeMilliseconds(), orderingKey, commitSeq);
    }

    // Changes come from the writer, the reloads of other brokers' changes and adoptions at once: under the lock, the
    // last rebuild reads the queues after every change that came before it, so none is overwritten by an older read.
    private void RebuildTopics()
    {
        lock (_rebuilding)
        {
            _byTopic = _queues.Values
                .GroupBy(q => q.Topic, StringComparer.Ordinal)
                .ToFrozenDictionary(g => g.Key, g => g.Select(q => q.Subscription).ToArray(), StringComparer.Ordinal);
        }
    }
}
