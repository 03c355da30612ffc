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
}
