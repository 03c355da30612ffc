using HalfMsgBroker.Cluster;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Delivery;

/// <summary>
/// The subscriptions a request or a delivery loop names, answered from this broker's memory
/// (<see cref="DeliveryRegistry"/>). With many active brokers on one database (<paramref name="stored"/> set), memory
/// learns of another broker's change only when its notification arrives, so a miss asks the store once and adopts what
/// it finds (<see cref="StoredSubscriptions.Adopt"/>) before answering: a subscription created through another broker a
/// moment ago is served at once, and a real absence still answers "not found". A hit never reads the store.
/// </summary>
internal sealed class SubscriptionLookup(DeliveryRegistry registry, StoredSubscriptions? stored)
{
    public SubscriptionQueue? Find(string group, string topic) => registry.Find(group, topic) ?? stored?.Adopt(group, topic);

    /// <summary>A group's subscriptions; with many brokers the store's are adopted first (a listing cannot tell a miss).</summary>
    public IEnumerable<SubscriptionQueue> QueuesOf(string group)
    {
        stored?.AdoptAll();
        return registry.QueuesOf(group);
    }

    /// <summary>Every subscription; with many brokers the store's are adopted first.</summary>
    public IEnumerable<SubscriptionQueue> All()
    {
        stored?.AdoptAll();
        return registry.All;
    }

    /// <summary>
    /// Whether a subscription of <paramref name="topic"/> satisfies <paramref name="wanted"/>: memory first, and with many
    /// brokers, when memory has none, the store's subscriptions after adopting them.
    /// </summary>
    public bool AnySubscriptionOf(string topic, Func<Subscription, bool> wanted)
    {
        if (registry.SubscriptionsOf(topic).Any(wanted)) return true;
        if (stored is null) return false;
        stored.AdoptAll();
        return registry.SubscriptionsOf(topic).Any(wanted);
    }
}
