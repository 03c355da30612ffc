using HalfMsgBroker.Lifecycle;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The message log: what the single writer changes, and the lookups by id or unique key it (and a
/// request) reads back. Write methods are called only by the writer thread, inside
/// <see cref="RunBatch"/>, and see the batch's own earlier writes; inside a batch only the lookups
/// (<see cref="Find"/>, <see cref="FindByTransactionId"/>, <see cref="FindByIdempotencyKey"/>,
/// <see cref="GetProducerGroup"/>) may be read. Outside a batch the lookups may be called from any
/// thread and see committed data.
/// </summary>
public interface IMessageLog
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
    ProducerGroup? GetProducerGroup(string name);
    IReadOnlyList<Subscription> Subscriptions();

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
}
