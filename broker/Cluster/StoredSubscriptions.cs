using HalfMsgBroker.Delivery;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;

namespace HalfMsgBroker.Cluster;

/// <summary>
/// Many active brokers on one database: brings this broker's subscriptions (<see cref="DeliveryRegistry"/>) in step with
/// the store, both when it hears of another broker's change (<see cref="Reload"/>, <see cref="ReloadAll"/>) and when a
/// request names a subscription it has not heard of yet (<see cref="Adopt"/>: a user behind a load balancer created it
/// through another broker a moment ago). Each reads the store and applies what it read under one lock, so an adoption
/// that read a subscription before its deletion cannot put it back after the deletion's reload removed it: whichever
/// runs second reads after the first applied.
/// </summary>
internal sealed class StoredSubscriptions(IMessageStore store, DeliveryRegistry registry, StoreWriter writer)
{
    private readonly Lock _applying = new();
    private long _storeReads;

    private PostgreSqlMessageStore Store => (PostgreSqlMessageStore)store;

    /// <summary>How many times a request's miss read the store (tests: a known subscription costs none).</summary>
    internal long StoreReads => Interlocked.Read(ref _storeReads);

    /// <summary>
    /// The queue of a subscription this broker's memory lacks, read from the store and added as a reload would add it;
    /// null when the store has none either. A new queue is nudged: rows of it may be waiting already.
    /// </summary>
    public SubscriptionQueue? Adopt(string group, string topic)
    {
        lock (_applying)
        {
            if (registry.Find(group, topic) is { } known) return known;
            Interlocked.Increment(ref _storeReads);
            if (Store.FindSubscription(group, topic) is not { } stored) return null;
            var (queue, added) = registry.Adopt(stored);
            if (added) queue.Nudge();
            return queue;
        }
    }

    /// <summary>Adds every stored subscription this broker's memory lacks (listings); keeps what it holds for a reload to change.</summary>
    public void AdoptAll()
    {
        lock (_applying)
        {
            Interlocked.Increment(ref _storeReads);
            foreach (var stored in store.Subscriptions())
            {
                if (registry.Find(stored.Group, stored.Topic) is not null) continue;
                var (queue, added) = registry.Adopt(stored);
                if (added) queue.Nudge();
            }
        }
    }

    /// <summary>Another broker changed this subscription: memory takes what is stored now.</summary>
    public void Reload(string group, string topic)
    {
        lock (_applying)
        {
            if (Store.FindSubscription(group, topic) is { } subscription) registry.Upsert(subscription);
            else Removed(group, topic);
        }
    }

    /// <summary>Every subscription as stored now (after notifications may have been lost); returns how many there are.</summary>
    public int ReloadAll()
    {
        lock (_applying)
        {
            var stored = store.Subscriptions();
            foreach (var subscription in stored) registry.Upsert(subscription);
            var kept = stored.Select(s => (s.Group, s.Topic)).ToHashSet();
            foreach (var queue in registry.All.ToList())
            {
                if (!kept.Contains((queue.Group, queue.Topic))) Removed(queue.Group, queue.Topic);
            }
            return stored.Count;
        }
    }

    /// <summary>As the deleting broker's own effect: the queue goes, and the deliveries this broker held for it are dropped.</summary>
    private void Removed(string group, string topic)
    {
        var ids = registry.Remove(group, topic);
        foreach (var chunk in ids.Chunk(500)) writer.Post(new DropDeliveries(group, chunk));
    }
}
