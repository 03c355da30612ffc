using HalfMsgBroker.Lifecycle;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The storage port. Write methods are called only by the single writer thread, inside
/// <see cref="RunBatch"/>, and see the batch's own earlier writes. Read methods may be called
/// from any thread and see committed data; inside a batch only the lookups by id or unique key
/// (<see cref="Find"/>, <see cref="FindByTransactionId"/>, <see cref="FindByIdempotencyKey"/>,
/// <see cref="GetProducerGroup"/>) may be used. Listings walk an index in id order and stop at
/// <c>limit</c>; a cursor (<c>after</c>) is the last id of the previous page.
/// </summary>
public interface IMessageStore : IDisposable
{
    /// <summary>
    /// Runs <paramref name="work"/> in one transaction and commits it, or rolls it all back. When
    /// <see cref="SyncsSeparately"/>, the commit is durable only after <see cref="MakeDurable"/>.
    /// </summary>
    void RunBatch(Action work);

    /// <summary>
    /// True when <see cref="RunBatch"/> writes and leaves the fsync to <see cref="MakeDurable"/>, so the
    /// writer can build the next batch while another thread waits for the disk.
    /// </summary>
    bool SyncsSeparately => false;

    /// <summary>Where the batches written so far end (writer thread): what <see cref="MakeDurable"/> is given.</summary>
    long WrittenPosition => 0;

    /// <summary>Returns once everything written up to <paramref name="position"/> survives a power loss; throws when it cannot.</summary>
    void MakeDurable(long position)
    {
    }

    StoredMessage? Find(Guid id);
    StoredMessage? FindByTransactionId(string transactionId);
    StoredMessage? FindByIdempotencyKey(string topic, string key);
    void Insert(StoredMessage message);
    void Update(StoredMessage message);
    void Delete(StoredMessage message);
    void AddToTopicCounts(IReadOnlyDictionary<string, long> deltas);
    void SaveProducerGroup(ProducerGroup group);
    void SaveSubscription(Subscription subscription);
    void DeleteSubscription(string group, string topic);

    /// <summary>
    /// The dead-letter index (listings, counts, expiry) is written by the writer, not derived from
    /// the message: whoever moves a delivery into <see cref="DeliveryState.DeadLettered"/> puts its
    /// entry, whoever moves it out deletes it, in the same batch as the message's <see cref="Update"/>.
    /// </summary>
    void PutDeadLetter(DeadLetterRef deadLetter, long deadLetteredAt);

    /// <inheritdoc cref="PutDeadLetter"/>
    void DeleteDeadLetter(DeadLetterRef deadLetter);

    ProducerGroup? GetProducerGroup(string name);
    IReadOnlyList<Subscription> Subscriptions();

    /// <summary>Every registered producer group, by name (the console's listing; there are few).</summary>
    IReadOnlyList<ProducerGroup> ProducerGroups() => [];

    /// <summary>How many producer groups are registered (for the quota).</summary>
    int ProducerGroupCount();

    /// <summary>
    /// Prepared messages whose next check is due, earliest first (an index range, not a scan), or the
    /// latest due first: what came due last, behind a backlog the check-back loop is still planning.
    /// </summary>
    IReadOnlyList<StoredMessage> DueChecks(long now, int limit, bool latestFirst = false);

    /// <summary>When the earliest prepared message is due for a check, or null when none is prepared.</summary>
    long? EarliestCheckDue();

    /// <summary>Finished messages whose retention ran out, earliest first.</summary>
    IReadOnlyList<Guid> DuePurges(long now, int limit);

    /// <summary>Dead letters made before <paramref name="deadLetteredBefore"/>, earliest first (an index range).</summary>
    IReadOnlyList<DeadLetterRef> ExpiredDeadLetters(long deadLetteredBefore, int limit);

    /// <summary>
    /// Committed messages with deliveries still to make, without their bodies: what recovery reloads
    /// after a restart. Read in chunks of the open range, so memory does not grow with their number.
    /// </summary>
    IEnumerable<OpenMessage> OpenMessages();

    /// <summary>Messages carrying the key (and on the topic, when given), in id order after <paramref name="after"/>.</summary>
    StorePage<StoredMessage> FindByKey(string key, string? topic, Guid? after, int limit);

    /// <summary>The group's dead letters (of one topic, when given), in message id order after <paramref name="after"/>.</summary>
    StorePage<StoredMessage> DeadLetters(string group, string? topic, Guid? after, int limit);

    /// <summary>The ids <see cref="DeadLetters"/> would list, read from the index alone: for walking them all in pages.</summary>
    StorePage<Guid> DeadLetterIds(string group, string? topic, Guid? after, int limit);

    /// <summary>
    /// Messages of the topic committed from <paramref name="from"/> to <paramref name="to"/> (inclusive), in commit
    /// order after <paramref name="after"/>, read from the commit-time index alone: for walking them in pages.
    /// </summary>
    IReadOnlyList<CommittedRef> CommittedOn(string topic, long from, long to, CommittedRef? after, int limit);

    /// <summary>How many dead letters the group has on the topic, counted on the index.</summary>
    int CountDeadLetters(string group, string topic);

    /// <summary>
    /// Half messages (transactions) in id order after <paramref name="after"/>, at most
    /// <paramref name="limit"/> that match: the state, producer group and topic when given, and
    /// <paramref name="filter"/>. The walk stops at the limit; it never loads all of them.
    /// </summary>
    IReadOnlyList<StoredMessage> Transactions(
        MessageState? state, string? producerGroup, string? topic, Guid? after, int limit, Func<StoredMessage, bool> filter);

    IReadOnlyList<TopicCount> TopicCounts();

    /// <summary>A random key made once per data file; receipt handles are signed with it.</summary>
    byte[] ReceiptKey();
}
