namespace HalfMsgBroker.Delivery;

/// <summary>A delivery handed to a push loop, to be settled through <see cref="IPushDeliveries"/>.</summary>
/// <param name="Payload">The message; null when it could not be loaded (purged meanwhile).</param>
/// <param name="Entry">The in-memory entry (null where deliveries are database rows).</param>
internal sealed record PushLease(Guid MessageId, ulong Nonce, int Attempt, string? OrderingKey, MessagePayload? Payload, DeliveryEntry? Entry);

/// <summary>
/// The push side of live deliveries, as a subscription's dispatch loop needs it: take one ready delivery,
/// and settle it after the POST. Waiting for the next one goes through the subscription's queue
/// (<see cref="SubscriptionQueue.HasReady"/>, <see cref="SubscriptionQueue.WaitForReadyAsync"/>) in both implementations.
/// </summary>
internal interface IPushDeliveries
{
    /// <summary>One ready delivery of the subscription, leased to the caller; null when none is ready.</summary>
    Task<PushLease?> TakeAsync(SubscriptionQueue queue);

    /// <summary>A 2xx: stores the ack. When the store refuses it the delivery comes back a second later and the error is thrown.</summary>
    Task AckAsync(SubscriptionQueue queue, PushLease lease);

    /// <summary>A failed attempt: stores it (retried after <paramref name="backoff"/>, or dead-lettered/discarded past maxAttempts).</summary>
    Task FailedAsync(SubscriptionQueue queue, PushLease lease, string error, TimeSpan backoff, long now);

    /// <summary>Nothing left to deliver (the message was purged, or the subscription is no longer push): the delivery is let go.</summary>
    Task GoneAsync(SubscriptionQueue queue, PushLease lease);
}
