using HalfMsgBroker.Lifecycle;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The storage port. Write methods are called only by the single writer thread, inside
/// <see cref="RunBatch"/>, and see the batch's own earlier writes. Read methods may be called
/// from any thread and see committed data; inside a batch only the lookups by id or unique key
/// (<see cref="Find"/>, <see cref="FindByTransactionId"/>, <see cref="FindByIdempotencyKey"/>,
/// <see cref="GetProducerGroup"/>) may be used.
/// </summary>
public interface IMessageStore : IDisposable
{
    /// <summary>Runs <paramref name="work"/> in one transaction and commits it durably, or rolls it all back.</summary>
    void RunBatch(Action work);

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

    ProducerGroup? GetProducerGroup(string name);
    IReadOnlyList<Subscription> Subscriptions();

    /// <summary>How many producer groups are registered (for the quota).</summary>
    int ProducerGroupCount();

    /// <summary>Prepared messages whose next check is due, earliest first (an index range, not a scan).</summary>
    IReadOnlyList<StoredMessage> DueChecks(long now, int limit);

    /// <summary>When the earliest prepared message is due for a check, or null when none is prepared.</summary>
    long? EarliestCheckDue();

    /// <summary>Finished messages whose retention ran out, earliest first.</summary>
    IReadOnlyList<Guid> DuePurges(long now, int limit);

    /// <summary>Committed messages with deliveries still to make: what recovery reloads after a restart.</summary>
    IEnumerable<StoredMessage> OpenMessages();

    IReadOnlyList<StoredMessage> FindByKey(string key, int limit);
    IReadOnlyList<StoredMessage> DeadLetters(string group);
    IReadOnlyList<StoredMessage> Transactions(MessageState? state, Guid? after, int limit, Func<StoredMessage, bool> filter);
    IReadOnlyList<TopicCount> TopicCounts();

    /// <summary>A random key made once per data file; receipt handles are signed with it.</summary>
    byte[] ReceiptKey();
}
