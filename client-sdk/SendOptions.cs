namespace HalfMsgBroker.Client;

/// <summary>Optional settings of a plain send.</summary>
public sealed record MessageOptions
{
    /// <summary>Settings with nothing set.</summary>
    public static MessageOptions Default { get; } = new();

    /// <summary>The tag (1–127 characters, no <c>|</c> or whitespace): subscriptions filter on it.</summary>
    public string? Tag { get; init; }

    /// <summary>Business keys (up to 32; for look-up and consumer-side de-duplication).</summary>
    public IReadOnlyList<string>? Keys { get; init; }

    /// <summary>String properties.</summary>
    public IReadOnlyDictionary<string, string>? Properties { get; init; }

    /// <summary>Defers delivery: 0 to 24 h (<see cref="HalfMsgLimits.MaxDelay"/>), whole seconds (a fraction rounds up). Not together with <see cref="DeliverAt"/>.</summary>
    public TimeSpan? Delay { get; init; }

    /// <summary>Defers delivery until this time (at most 24 h ahead). Not together with <see cref="Delay"/>.</summary>
    public DateTimeOffset? DeliverAt { get; init; }

    /// <summary>The idempotency key; when null the SDK generates one per call.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>
    /// Messages of the topic with the same ordering key (1–128 characters) reach each consumer group one at a
    /// time, in commit order: the next only after the previous one is acked, dead-lettered or discarded.
    /// </summary>
    public string? OrderingKey { get; init; }
}

/// <summary>
/// Optional settings of a half-message send (<see cref="IHalfMsgClient.SendHalfAsync{T}"/> and
/// <see cref="ITransactionalProducer.SendInTransactionAsync{T}"/>): the transaction id, tag, keys,
/// properties and check immunity. All are optional; <see cref="Default"/> sets none.
/// </summary>
/// <example><c>new HalfMsgSendOptions { TransactionId = order.TransactionId, Tag = "created", Keys = ["order-42"] }</c></example>
public sealed record HalfMsgSendOptions
{
    /// <summary>Settings with nothing set.</summary>
    public static HalfMsgSendOptions Default { get; } = new();

    /// <summary>
    /// The transaction id (1–128 characters without whitespace or <c>/ ? # %</c>); when null a new one is
    /// generated (<see cref="TransactionIds.New"/>). Set it when your local transaction must store it before
    /// the half message is sent, e.g. in an order row, so a retried request reuses the same transaction.
    /// </summary>
    public string? TransactionId { get; init; }

    /// <summary>The tag (1–127 characters, no <c>|</c> or whitespace): subscriptions filter on it.</summary>
    public string? Tag { get; init; }

    /// <summary>Business keys (up to 32).</summary>
    public IReadOnlyList<string>? Keys { get; init; }

    /// <summary>String properties.</summary>
    public IReadOnlyDictionary<string, string>? Properties { get; init; }

    /// <summary>Time before the first check-back: 0 to 24 h, whole seconds; null for the broker's <c>CheckAfter</c> (6 s by default).</summary>
    public TimeSpan? CheckImmunity { get; init; }

    /// <summary>
    /// Messages of the topic with the same ordering key (1–128 characters) reach each consumer group one at a
    /// time, in commit order (a half message counts from its commit).
    /// </summary>
    public string? OrderingKey { get; init; }
}

/// <summary>Settings of a pull receive.</summary>
public sealed record ReceiveOptions
{
    /// <summary>16 messages, 20 s wait, 30 s invisibility.</summary>
    public static ReceiveOptions Default { get; } = new();

    /// <summary>At most this many messages per call (1 to <see cref="HalfMsgLimits.MaxReceiveMessages"/>).</summary>
    public int MaxMessages { get; init; } = 16;

    /// <summary>Long-poll wait for a first message (0 to 30 s, whole seconds).</summary>
    public TimeSpan WaitTime { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>How long a received message stays hidden from the group (1 s to 12 h, whole seconds).</summary>
    public TimeSpan InvisibleFor { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>Filters of a transaction listing (<see cref="IHalfMsgClient.ListTransactionsAsync"/>).</summary>
public sealed record TransactionQuery
{
    /// <summary>Only transactions in this state; null for all.</summary>
    public MessageState? State { get; init; }

    /// <summary>Only this producer group.</summary>
    public string? ProducerGroup { get; init; }

    /// <summary>Only this topic.</summary>
    public string? Topic { get; init; }

    /// <summary>Page size (1 to <see cref="HalfMsgLimits.MaxPageSize"/>); null for the broker's 100.</summary>
    public int? Limit { get; init; }

    /// <summary>The <see cref="TransactionList.Next"/> cursor of the previous page; null for the first.</summary>
    public string? After { get; init; }
}
