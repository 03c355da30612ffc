using HalfMsgBroker.Lifecycle;

namespace HalfMsgBroker.Delivery;

/// <summary>A live delivery as a reader sees it: its state, the attempts made, and when it is next due (0: not waiting).</summary>
internal readonly record struct LiveDelivery(DeliveryState State, int Attempts, long NextAttemptAt);

/// <summary>
/// The read side of live deliveries, as listings, lookups and gauges need it. Where deliveries live is the
/// implementation's business (<see cref="InMemoryDeliveryFigures"/>: this process's queues); the subscriptions
/// themselves are listed by <see cref="DeliveryRegistry"/>.
/// </summary>
internal interface IDeliveryFigures
{
    /// <summary>How many deliveries of a subscription are ready (or waiting for their ordering key's turn), in flight and retrying.</summary>
    QueueCounts Counts(string group, string topic);

    /// <summary>A group's live delivery of a message, or null when it holds none (finished, or not live yet).</summary>
    LiveDelivery? Find(string group, string topic, Guid messageId);
}

/// <summary><see cref="IDeliveryFigures"/> read from this process's queues, each under its own short lock.</summary>
internal sealed class InMemoryDeliveryFigures(DeliveryRegistry registry) : IDeliveryFigures
{
    public QueueCounts Counts(string group, string topic) => registry.Find(group, topic)?.Counts() ?? default;

    public LiveDelivery? Find(string group, string topic, Guid messageId)
    {
        if (registry.Find(group, topic)?.Peek(messageId) is not { } live) return null;
        var (state, next) = live.Phase switch
        {
            EntryPhase.InFlight => (DeliveryState.InFlight, 0L),
            EntryPhase.Waiting when live.Attempts > 0 => (DeliveryState.Retrying, live.DueAt),
            EntryPhase.Waiting => (DeliveryState.Pending, live.DueAt),
            _ => (DeliveryState.Pending, 0L),
        };
        return new LiveDelivery(state, live.Attempts, next);
    }
}
