using HalfMsgBroker.Lifecycle;

namespace HalfMsgBroker.Storage;

/// <summary>
/// One message and every consumer group's delivery of it, stored as a single document so that a
/// commit (state + fan-out) and an ack are each one document write. Times are Unix milliseconds;
/// 0 means "not set".
/// </summary>
public sealed class StoredMessage
{
    public Guid Id { get; init; }
    public required string Topic { get; init; }
    public string? Tag { get; init; }
    public string[] Keys { get; init; } = [];
    public Dictionary<string, string>? Properties { get; init; }

    /// <summary>The body as compact UTF-8 JSON, exactly what consumers receive.</summary>
    public required byte[] Body { get; init; }

    public MessageState State { get; set; }
    public string? TransactionId { get; init; }
    public string? ProducerGroup { get; init; }

    /// <summary>
    /// The other messages of a multi-message transaction, on its first message (the one holding the
    /// transactionId, checked and ended for all of them); empty otherwise.
    /// </summary>
    public Guid[] Members { get; set; } = [];

    /// <summary>
    /// On the other messages of a multi-message transaction: its transactionId. They are not unique by
    /// it, have no check time of their own, and end when their transaction's first message ends.
    /// </summary>
    public string? InTransaction { get; set; }

    /// <summary>Topic-scoped Idempotency-Key of a plain send.</summary>
    public string? IdempotencyKey { get; init; }

    public string? TraceParent { get; init; }

    /// <summary>Messages of a topic with the same key are delivered to each group one at a time, in commit order.</summary>
    public string? OrderingKey { get; set; }

    /// <summary>Where a keyed message's commit falls in commit order (0 for an unkeyed or uncommitted one): recovery restores each key's order from it.</summary>
    public long CommitSeq { get; set; }

    public long BornAt { get; init; }

    /// <summary>When the message becomes ready for consumers (0: as soon as it is committed).</summary>
    public long DeliverAt { get; set; }

    public int CheckCount { get; set; }
    public long NextCheckAt { get; set; }
    public long LastCheckAt { get; set; }
    public string? LastCheckResult { get; set; }

    /// <summary>Checks that could not reach the producer; they do not count in <see cref="CheckCount"/>.</summary>
    public int UnreachableCount { get; set; }

    /// <summary>Unreachable checks in a row, for the backoff between them.</summary>
    public int UnreachableStreak { get; set; }

    /// <summary>Checks answered unknown (or with a timeout, an error status or an invalid answer).</summary>
    public int UnknownCount { get; set; }

    public ResolvedBy ResolvedBy { get; set; }
    public long ResolvedAt { get; set; }

    /// <summary>
    /// Until 2026-11-30 a commit left the message filed under its check time (this one) until its ack.
    /// No longer set (a commit files it as open); kept so journals and documents written before still read.
    /// </summary>
    public long FiledCheckAt { get; set; }

    public List<StoredDelivery> Deliveries { get; private set; } = [];

    /// <summary>Set when nothing is left to do for the message; retention deletes it then.</summary>
    public long PurgeAt { get; set; }

    /// <summary>
    /// A copy that later changes to this message do not reach (the writer keeps changing the messages
    /// it caches). Topic, body, keys and properties are never changed after creation, so they are shared.
    /// </summary>
    public StoredMessage Snapshot()
    {
        var copy = (StoredMessage)MemberwiseClone();
        var deliveries = new List<StoredDelivery>(Deliveries.Count);
        foreach (var d in Deliveries)
        {
            deliveries.Add(new StoredDelivery
            {
                Group = d.Group,
                State = d.State,
                Attempts = d.Attempts,
                LastError = d.LastError,
                NextAttemptAt = d.NextAttemptAt,
                DeadLetteredAt = d.DeadLetteredAt,
            });
        }
        copy.Deliveries = deliveries;
        return copy;
    }

    public StoredDelivery? DeliveryFor(string group)
    {
        foreach (var d in Deliveries)
        {
            if (d.Group == group) return d;
        }
        return null;
    }
}

public sealed class StoredDelivery
{
    public required string Group { get; init; }
    public DeliveryState State { get; set; }
    public int Attempts { get; set; }
    public string? LastError { get; set; }
    public long NextAttemptAt { get; set; }
    public long DeadLetteredAt { get; set; }
}

/// <param name="MaxChecksInFlight">Null: the broker's default (<c>Broker:Transactions:ProducerGroupMaxChecksInFlight</c>).</param>
/// <param name="MaxChecksPerSecond">Null: the broker's default; 0: no rate limit.</param>
public sealed record ProducerGroup(
    string Name, string? CheckUrl, int CheckTimeoutMs, ReceiverSecret? Signing = null, int? MaxChecksInFlight = null, int? MaxChecksPerSecond = null);

public sealed record Subscription(
    string Group,
    string Topic,
    TagFilter TagFilter,
    PushTarget? Push,
    int MaxAttempts,
    ExhaustedAction OnExhausted,
    long CreatedAt,
    ReceiverSecret? Signing = null,
    bool Paused = false);

public sealed record PushTarget(string Url, int TimeoutMs);

public sealed record TopicCount(string Topic, long MessageCount);
