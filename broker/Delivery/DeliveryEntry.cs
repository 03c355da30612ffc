using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Delivery;

internal enum EntryPhase
{
    /// <summary>Can be handed out now.</summary>
    Ready,

    /// <summary>Waiting for a due time: a delayed message or a retry backoff.</summary>
    Waiting,

    /// <summary>Handed to a consumer (pull: until its visibility runs out) or being pushed.</summary>
    InFlight,

    /// <summary>Acked, exhausted or dropped; no longer in its queue.</summary>
    Done,

    /// <summary>Waiting for an earlier delivery with the same ordering key to finish (its due time is kept in DueAt).</summary>
    Blocked,
}

/// <summary>
/// One consumer group's live delivery of one message, held in memory. Only its owning
/// <see cref="SubscriptionQueue"/> changes it, under the queue's lock. <see cref="Version"/> moves
/// with every change so a timer set for an older state can tell it is stale.
/// </summary>
internal sealed class DeliveryEntry(Guid messageId, SubscriptionQueue queue)
{
    public Guid MessageId { get; } = messageId;
    public SubscriptionQueue Queue { get; } = queue;

    public EntryPhase Phase { get; set; }
    public int Attempts { get; set; }
    public long DueAt { get; set; }
    public ulong Nonce { get; set; }
    public long Version { get; set; }

    /// <summary>In flight while its failure (nack, failed push, visibility timeout) is being stored.</summary>
    public bool Settling { get; set; }

    /// <summary>The message's ordering key and place among the key's deliveries; null (one reference, no more) for an unkeyed message.</summary>
    public OrderSlot? Order { get; init; }

    public string? OrderingKey => Order?.Key;
    public long CommitSeq => Order?.Seq ?? 0;

    /// <summary>A retry-now was stored while this entry's failure was being stored: once it is, the retry is due at once.</summary>
    public bool RetryNowRequested { get; set; }

    /// <summary>The message itself, cached while within the memory budget; otherwise loaded on hand-out.</summary>
    public MessagePayload? Payload { get; set; }
}

/// <summary>What a consumer receives of a message: immutable, shared by every group's entry.</summary>
internal sealed record MessagePayload(
    Guid Id,
    string Topic,
    string? Tag,
    string[] Keys,
    Dictionary<string, string>? Properties,
    byte[] Body,
    long BornAt,
    string? TraceParent)
{
    public static MessagePayload From(StoredMessage m) =>
        new(m.Id, m.Topic, m.Tag, m.Keys, m.Properties, m.Body, m.BornAt, m.TraceParent);

    public long ApproximateBytes => Body.Length + 256;
}

/// <summary>A keyed delivery's ordering key and place in commit order.</summary>
internal sealed record OrderSlot(string Key, long Seq);

/// <summary>An entry handed out by <see cref="SubscriptionQueue.Take"/>, with the values of that hand-out.</summary>
internal readonly record struct Lease(DeliveryEntry Entry, ulong Nonce, int Attempt);

/// <summary>Stores the outcome of a failed attempt; the queue moves the delivery on only after it completes.</summary>
internal interface IDeliveryRecorder
{
    Task RecordAsync(Guid messageId, string group, FailureOutcome outcome);
}
