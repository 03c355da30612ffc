using HalfMsgBroker.Configuration;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Transactions;

namespace HalfMsgBroker.Engine;

/// <summary>What a command sees while it runs inside a group commit.</summary>
internal sealed class WriteContext(IMessageLog store, BrokerOptions options, DeliveryRegistry deliveries, ILiveDeliveries live, CheckSchedule checks)
{
    private readonly List<Action> _effects = [];
    private readonly Dictionary<string, long> _topicDeltas = new(StringComparer.Ordinal);

    public IMessageLog Store { get; } = store;

    /// <summary>Messages go through here, not <see cref="Store"/>, so recently written ones are not read back.</summary>
    public WriterMessageCache Messages { get; } = new(store, Math.Max(1024, options.Storage.WriterCacheSize));
    public BrokerOptions Options { get; } = options;
    public DeliveryRegistry Deliveries { get; } = deliveries;

    /// <summary>The subscriptions a message of <paramref name="topic"/> fans out to: the store's when others change them (<see cref="ISharedSubscriptions"/>).</summary>
    public IReadOnlyList<Subscription> SubscriptionsOf(string topic) =>
        (Store as ISharedSubscriptions)?.SubscriptionsForFanOut(topic) ?? Deliveries.SubscriptionsOf(topic);

    /// <summary>
    /// The subscription a change merges with (creation time, secret, pause): the store's, locked, when others change them
    /// (<see cref="ISharedSubscriptions"/>), since this broker may not have heard of their latest change yet.
    /// </summary>
    public Subscription? SubscriptionToChange(string group, string topic) =>
        Store is ISharedSubscriptions shared && shared.TryReadForChange(group, topic, out var stored)
            ? stored
            : Deliveries.Find(group, topic)?.Subscription;

    /// <summary>Where stored deliveries go live once the batch is durable.</summary>
    public ILiveDeliveries Live { get; } = live;
    public CheckSchedule Checks { get; } = checks;

    /// <summary>
    /// True when commands run one by one after their batch failed. A send then looks for an existing
    /// message first; in a batch it just inserts and lets the unique index catch the rare duplicate.
    /// </summary>
    public bool Careful { get; private set; }

    /// <summary>Time-ordered message ids, in order even within a millisecond.</summary>
    public MessageIds Ids { get; } = new();

    /// <summary>What the batch's commands did, for the metrics once it is durable.</summary>
    public BatchTally Tally { get; } = new();

    /// <summary>
    /// Commit order of keyed messages, strictly increasing: a thousand steps per millisecond of the clock,
    /// so it also keeps increasing across a restart (which takes far longer than the steps run ahead).
    /// </summary>
    public long NextCommitSeq() => _commitSeq = Math.Max(Now * 1000, _commitSeq + 1);

    private long _commitSeq;

    /// <summary>The batch's clock: every command in one group commit sees the same "now".</summary>
    public long Now { get; private set; }

    /// <summary>Runs <paramref name="effect"/> on the writer thread once the batch is durable, in order.</summary>
    public void AfterCommit(Action effect) => _effects.Add(effect);

    public void CountMessage(string topic, long delta) =>
        _topicDeltas[topic] = _topicDeltas.GetValueOrDefault(topic) + delta;

    /// <summary>
    /// With many active brokers another one may change a message between two batches, so the writer keeps messages for
    /// one batch only: each batch reads them again, locked (see <c>PostgreSqlMessageStore.MultiActive.cs</c>).
    /// </summary>
    private readonly bool _cachePerBatch = options.Storage.Provider == StorageProvider.PostgreSql && options.Storage.PostgreSql.MultiActive;

    internal void Begin(long now, bool careful)
    {
        if (_cachePerBatch) Messages.Clear();
        Now = now;
        Careful = careful;
        _effects.Clear();
        _topicDeltas.Clear();
        Tally.Clear();
    }

    internal void FlushCounts() => Store.AddToTopicCounts(_topicDeltas);

    internal IReadOnlyList<Action> Effects => _effects;
}
