using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

/// <summary>
/// A store whose subscriptions other brokers change between this writer's batches (<c>MultiActive</c>): the fan-out of
/// a commit or send reads the topic's subscriptions from it, in the batch's own transaction, instead of this broker's
/// <see cref="Delivery.DeliveryRegistry"/>, which hears of another broker's change only when its notification arrives.
/// </summary>
internal interface ISharedSubscriptions
{
    /// <summary>The topic's subscriptions as committed (writer thread, inside a batch); null when the registry is the truth.</summary>
    IReadOnlyList<Subscription>? SubscriptionsForFanOut(string topic);

    /// <summary>
    /// The subscription a change starts from, as committed, read in the batch's own transaction after taking the lock that
    /// every change of the topic's subscriptions takes, so nobody changes it before this batch ends (writer thread, inside a
    /// batch). False when the registry is the truth; <paramref name="stored"/> is null when there is none.
    /// </summary>
    bool TryReadForChange(string group, string topic, out Subscription? stored);
}
