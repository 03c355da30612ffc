using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Delivery;

/// <summary>One delivery handed to a pull consumer: settled later by its message id and <see cref="Nonce"/>.</summary>
internal readonly record struct PulledDelivery(MessagePayload Payload, ulong Nonce, int Attempt, string? OrderingKey);

/// <summary>What a settled nack stored: the state, and when it is tried again (0 unless retrying).</summary>
internal readonly record struct NackStored(DeliveryState State, long NextAttemptAt);

/// <summary>Which of an ack request's handles were acked; the rest were stale.</summary>
internal readonly record struct AckOutcome(int Acked, IReadOnlyList<int> StaleIndexes);

/// <summary>
/// The pull side of live deliveries, as the pull API needs it: receive with a lease, and settle a lease by
/// (message id, nonce). Where deliveries live is the implementation's business: in this process's
/// queues (<see cref="InMemoryPullDeliveries"/>), or in a database every broker shares. Each call answers
/// only once what it changed is stored.
/// </summary>
internal interface IPullDeliveries
{
    /// <summary>
    /// Takes up to <paramref name="max"/> ready deliveries of a subscription, waiting up to <paramref name="wait"/>
    /// for the first; each stays invisible for <paramref name="invisible"/> from when it was taken unless settled.
    /// When the consumer goes away (<paramref name="cancellationToken"/>) what it was handed becomes visible again
    /// after that time. Nothing when the subscription is gone.
    /// </summary>
    Task<IReadOnlyList<PulledDelivery>> ReceiveAsync(
        string group, string topic, int max, TimeSpan wait, TimeSpan invisible, CancellationToken cancellationToken);

    /// <summary>Acks the leases that are still held; on a store failure none is acked and the error is thrown.</summary>
    Task<AckOutcome> AckAsync(string group, IReadOnlyList<(Guid MessageId, ulong Nonce)> leases);

    /// <summary>
    /// Gives a lease up: back to the group at <paramref name="retryAt"/> (Unix ms; 0: the next backoff level), or
    /// dead-lettered or discarded past its subscription's maxAttempts. Null when the lease is no longer held.
    /// A store failure is thrown, and the delivery stays in flight under the same lease.
    /// </summary>
    Task<NackStored?> NackAsync(string group, Guid messageId, ulong nonce, long retryAt, long now);

    /// <summary>Moves a held lease's end to <paramref name="visibleAt"/> (Unix ms); false when the lease is no longer held.</summary>
    bool ChangeInvisibility(string group, Guid messageId, ulong nonce, long visibleAt);
}
