using System.Collections.Concurrent;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Access;

/// <summary>
/// How many topics, subscriptions and producer groups the broker will hold (<c>Broker:Quotas</c>), so
/// no client can grow its memory and storage without bound. Checked before the change is submitted:
/// concurrent creations can overshoot a limit by at most their number.
/// </summary>
internal sealed class Quotas(IMessageLog log, IStoreMonitoring store, DeliveryRegistry registry, SubscriptionLookup subscriptions, IOptions<QuotaOptions> options)
{
    private readonly QuotaOptions _limits = options.Value;
    private readonly Lock _init = new();
    private ConcurrentDictionary<string, byte>? _topics;

    /// <summary>Why a send to <paramref name="topic"/> is refused, or null. One dictionary probe on the hot path.</summary>
    public string? TopicRefused(string topic)
    {
        var topics = Topics();
        if (topics.ContainsKey(topic) || topics.Count < _limits.MaxTopics) return null;
        return $"The broker holds {topics.Count} topics, its limit (Broker:Quotas:MaxTopics); send to an existing topic or raise the limit.";
    }

    public void TopicUsed(string topic) => Topics().TryAdd(topic, 0);

    public string? SubscriptionRefused(string group, string topic)
    {
        // A subscription this broker has not heard of yet is changed, not created: it takes no new place.
        if (subscriptions.Find(group, topic) is not null) return null;
        var count = registry.All.Count();
        return count < _limits.MaxSubscriptions ? null
            : $"The broker holds {count} subscriptions, its limit (Broker:Quotas:MaxSubscriptions); delete unused ones first.";
    }

    public string? ProducerGroupRefused(string name)
    {
        if (log.GetProducerGroup(name) is not null) return null;
        var count = store.ProducerGroupCount();
        return count < _limits.MaxProducerGroups ? null
            : $"The broker holds {count} producer groups, its limit (Broker:Quotas:MaxProducerGroups).";
    }

    private ConcurrentDictionary<string, byte> Topics()
    {
        if (_topics is { } known) return known;
        lock (_init)
        {
            return _topics ??= new ConcurrentDictionary<string, byte>(
                store.TopicCounts().Select(t => KeyValuePair.Create(t.Topic, (byte)0)), StringComparer.Ordinal);
        }
    }
}
