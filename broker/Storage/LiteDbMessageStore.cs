using System.Security.Cryptography;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The embedded LiteDB store. LiteDB transactions belong to the OS thread, so every write runs on
/// one thread inside <see cref="RunBatch"/> (in the broker, the applier of
/// <see cref="JournaledMessageStore"/>); reads elsewhere see committed snapshots.
/// </summary>
public sealed class LiteDbMessageStore : IMessageStore
{
    private const string FileName = "broker.db";

    private readonly LiteDatabase _db;
    private readonly ILiteCollection<BsonDocument> _messages;
    private readonly ILiteCollection<BsonDocument> _producerGroups;
    private readonly ILiteCollection<BsonDocument> _subscriptions;
    private readonly ILiteCollection<BsonDocument> _topics;
    private readonly ILiteCollection<BsonDocument> _meta;
    private readonly LogFileSync? _sync;
    private readonly DataPathLock _lock;

    private readonly TopicCounts _topicCounts;

    /// <param name="notice">Told about one-off maintenance at open (a collation migration), for the log.</param>
    public LiteDbMessageStore(string dataPath, Durability durability, int checkpointPages = 1000, Action<string>? notice = null)
    {
        Directory.CreateDirectory(dataPath);
        _lock = new DataPathLock(dataPath);
        var file = Path.Combine(dataPath, FileName);
        try
        {
            _db = CollationMigration.Open(dataPath, file, notice);
        }
        catch
        {
            _lock.Dispose();
            throw;
        }
        _db.CheckpointSize = checkpointPages;
        _messages = _db.GetCollection("messages", BsonAutoId.Guid);
        _producerGroups = _db.GetCollection("producerGroups");
        _subscriptions = _db.GetCollection("subscriptions");
        _topics = _db.GetCollection("topics");
        _meta = _db.GetCollection("meta");

        // Three secondary indexes carry every lookup: q (due-time queues), u (unique keys) and lk (multi-key lookups).
        _messages.EnsureIndex(MessageCodec.QueueField, "$." + MessageCodec.QueueField);
        _messages.EnsureIndex(MessageCodec.UniqueField, "$." + MessageCodec.UniqueField, unique: true);
        _messages.EnsureIndex(MessageCodec.LookupField, "$." + MessageCodec.LookupField + "[*]");

        _topicCounts = new TopicCounts(_topics, _meta, _messages);
        if (durability == Durability.Fsync) _sync = new LogFileSync(file);
    }

    public void RunBatch(Action work)
    {
        _db.BeginTrans();
        try
        {
            work();
            _db.Commit();
        }
        catch
        {
            _db.Rollback();
            _topicCounts.RolledBack();
            throw;
        }
        _topicCounts.Committed();
        _sync?.Flush();
    }

    public StoredMessage? Find(Guid id)
    {
        var doc = _messages.FindById(id);
        return doc is null ? null : MessageCodec.FromBson(doc);
    }

    public StoredMessage? FindByTransactionId(string transactionId) =>
        FindByUniqueKey(MessageCodec.TransactionKey(transactionId));

    public StoredMessage? FindByIdempotencyKey(string topic, string key) =>
        FindByUniqueKey(MessageCodec.IdempotencyKey(topic, key));

    public static bool IsDuplicateKey(Exception e) => e is DuplicateKeyException or LiteException { ErrorCode: LiteException.INDEX_DUPLICATE_KEY };

    public void Insert(StoredMessage message)
    {
        _messages.Insert(MessageCodec.ToBson(message));
        _topicCounts.Inserted(message.Id);
    }

    public void Update(StoredMessage message) => _messages.Update(MessageCodec.ToBson(message));

    public void Delete(StoredMessage message)
    {
        _messages.Delete(message.Id);
        _topicCounts.Deleted();
    }

    public void AddToTopicCounts(IReadOnlyDictionary<string, long> deltas) => _topicCounts.Add(deltas, Environment.TickCount64);

    public void SaveProducerGroup(ProducerGroup group) => _producerGroups.Upsert(ToBson(group));

    public ProducerGroup? GetProducerGroup(string name)
    {
        var doc = _producerGroups.FindById(name);
        return doc is null ? null : ProducerGroupFrom(doc);
    }

    internal static BsonDocument ToBson(ProducerGroup group)
    {
        var doc = new BsonDocument
        {
            ["_id"] = group.Name,
            ["u"] = group.CheckUrl is null ? BsonValue.Null : new BsonValue(group.CheckUrl),
            ["to"] = group.CheckTimeoutMs,
        };
        WriteSigning(doc, group.Signing);
        return doc;
    }

    internal static ProducerGroup ProducerGroupFrom(BsonDocument doc) =>
        new(doc["_id"].AsString, doc["u"].IsNull ? null : doc["u"].AsString, doc["to"].AsInt32, ReadSigning(doc));

    /// <summary>Written only when set, so documents from before signing secrets existed read as "none".</summary>
    private static void WriteSigning(BsonDocument doc, ReceiverSecret? signing)
    {
        if (signing is null) return;
        doc["ss"] = signing.Secret;
        doc["sc"] = signing.CreatedAt;
        if (signing.Previous is null) return;
        doc["sp"] = signing.Previous;
        doc["su"] = signing.PreviousUntil;
    }

    private static ReceiverSecret? ReadSigning(BsonDocument doc)
    {
        if (!doc.TryGetValue("ss", out var secret)) return null;
        return doc.TryGetValue("sp", out var previous)
            ? new ReceiverSecret(secret.AsString, doc["sc"].AsInt64, previous.AsString, doc["su"].AsInt64)
            : new ReceiverSecret(secret.AsString, doc["sc"].AsInt64);
    }

    public void SaveSubscription(Subscription s) => _subscriptions.Upsert(ToBson(s));

    internal static BsonDocument ToBson(Subscription s)
    {
        var doc = new BsonDocument
        {
            ["_id"] = SubscriptionId(s.Group, s.Topic),
            ["g"] = s.Group,
            ["t"] = s.Topic,
            ["f"] = s.TagFilter.Expression,
            ["m"] = s.MaxAttempts,
            ["x"] = (int)s.OnExhausted,
            ["c"] = s.CreatedAt,
        };
        if (s.Push is not null)
        {
            doc["pu"] = s.Push.Url;
            doc["pt"] = s.Push.TimeoutMs;
        }
        WriteSigning(doc, s.Signing);
        return doc;
    }

    public void DeleteSubscription(string group, string topic) => _subscriptions.Delete(SubscriptionId(group, topic));

    /// <summary>
    /// Applier thread: stores a set of journaled changes in one transaction, together with the last
    /// journal frame they include. Deletes go first, so a unique key freed by one is free for an insert.
    /// <paramref name="updateFirst"/>: LiteDB may hold some of them already (a replay, a retry), so every
    /// new message is updated, or inserted if that finds nothing.
    /// </summary>
    internal void Apply(ChangeSet changes, bool updateFirst = false)
    {
        // Documents are built before the transaction, so LiteDB's locks are held only for the writes.
        var documents = new List<(MessageChange Change, BsonDocument Doc)>(changes.Messages.Count);
        foreach (var change in changes.Messages.Values)
        {
            if (change.Message is { } message) documents.Add((change, MessageCodec.ToBson(message)));
        }
        RunBatch(() =>
        {
            foreach (var (id, change) in changes.Messages)
            {
                if (change.Message is null && change.InDb && _messages.Delete(id)) _topicCounts.Deleted();
            }
            foreach (var ((collection, id), doc) in changes.Documents)
            {
                var target = collection == DocumentCollection.ProducerGroups ? _producerGroups : _subscriptions;
                if (doc is null) target.Delete(id);
                else target.Upsert(doc);
            }
            foreach (var (change, doc) in documents)
            {
                if ((change.InDb || updateFirst) && _messages.Update(doc)) continue;
                _messages.Insert(doc);
                _topicCounts.Inserted(change.Message!.Id);
            }
            _meta.Upsert(new BsonDocument { ["_id"] = JournalMarkId, ["v"] = changes.LastSeq });
            _topicCounts.Add(changes.TopicDeltas, Environment.TickCount64);
        });
    }

    /// <summary>The last journal frame LiteDB holds (0 for a new data file).</summary>
    internal long AppliedJournalSeq() => _meta.FindById(JournalMarkId)?["v"].AsInt64 ?? 0;

    /// <summary>Every stored transactionId and Idempotency-Key, read from the unique index alone.</summary>
    internal IEnumerable<string> ProducerChosenKeys()
    {
        foreach (var prefix in new[] { "x:", "i:" })
        {
            foreach (var doc in _messages.Query().Where(Query.StartsWith(MessageCodec.UniqueField, prefix)).Select("$." + MessageCodec.UniqueField).ToEnumerable())
            {
                foreach (var (_, value) in doc) yield return value.AsString;
            }
        }
    }

    internal string ExplainProducerChosenKeys() =>
        _messages.Query().Where(Query.StartsWith(MessageCodec.UniqueField, "x:")).Select("$." + MessageCodec.UniqueField).GetPlan().ToString();

    private const string JournalMarkId = "journalApplied";

    public int ProducerGroupCount() => _producerGroups.Count();

    public IReadOnlyList<Subscription> Subscriptions() => _subscriptions.FindAll().Select(SubscriptionFrom).ToList();

    internal static Subscription SubscriptionFrom(BsonDocument doc) => new(
        doc["g"].AsString,
        doc["t"].AsString,
        TagFilter.TryParse(doc["f"].AsString, out _) ?? TagFilter.All,
        doc.TryGetValue("pu", out var url) ? new PushTarget(url.AsString, doc["pt"].AsInt32) : null,
        doc["m"].AsInt32,
        (ExhaustedAction)doc["x"].AsInt32,
        doc["c"].AsInt64,
        ReadSigning(doc));

    public IReadOnlyList<StoredMessage> DueChecks(long now, int limit) =>
        _messages.Find(QueueRange(MessageCodec.CheckKey(0), MessageCodec.CheckKey(now)), 0, limit)
            .Select(MessageCodec.FromBson).ToList();

    public long? EarliestCheckDue()
    {
        var doc = _messages.Find(QueueRange(MessageCodec.CheckKey(0), MessageCodec.CheckKey(MaxTime)), 0, 1)
            .FirstOrDefault();
        if (doc is null) return null;
        var m = MessageCodec.FromBson(doc);
        return m.State == MessageState.Prepared ? m.NextCheckAt : m.FiledCheckAt;
    }

    public IReadOnlyList<Guid> DuePurges(long now, int limit) =>
        _messages.Find(QueueRange(MessageCodec.PurgeKey(0), MessageCodec.PurgeKey(now)), 0, limit)
            .Select(doc => doc["_id"].AsGuid).ToList();

    public IEnumerable<StoredMessage> OpenMessages()
    {
        foreach (var doc in _messages.Find(Query.EQ(MessageCodec.QueueField, MessageCodec.Open))) yield return MessageCodec.FromBson(doc);

        // Committed messages still filed under their old check time (see StoredMessage.FiledCheckAt).
        var committed = (int)MessageState.Committed;
        foreach (var doc in _messages.Find(QueueRange(MessageCodec.CheckKey(0), MessageCodec.CheckKey(MaxTime))))
        {
            if (doc["s"].AsInt32 == committed) yield return MessageCodec.FromBson(doc);
        }
    }

    public IReadOnlyList<StoredMessage> FindByKey(string key, int limit) => FindByLookup(MessageCodec.MessageKey(key))
        .OrderBy(m => m.Id).Take(limit).ToList();

    public IReadOnlyList<StoredMessage> DeadLetters(string group) => FindByLookup(MessageCodec.DeadLetterKey(group))
        .OrderBy(m => m.Id).ToList();

    public IReadOnlyList<StoredMessage> Transactions(MessageState? state, Guid? after, int limit, Func<StoredMessage, bool> filter)
    {
        // Prepared messages have their own index range; ended ones are rare to list and walk the id index.
        var source = state == MessageState.Prepared
            ? _messages.Find(QueueRange(MessageCodec.CheckKey(0), MessageCodec.CheckKey(MaxTime)))
                .Select(MessageCodec.FromBson).OrderBy(m => m.Id)
            : (after is null ? _messages.FindAll() : _messages.Find(Query.GT("_id", after.Value)))
                .Select(MessageCodec.FromBson);
        return source
            .Where(m => m.TransactionId is not null && (after is null || m.Id.CompareTo(after.Value) > 0))
            .Where(m => state is null || m.State == state)
            .Where(filter)
            .Take(limit)
            .ToList();
    }

    public IReadOnlyList<TopicCount> TopicCounts() => _topicCounts.All();

    public byte[] ReceiptKey()
    {
        var doc = _meta.FindById("receiptKey");
        if (doc is not null) return doc["v"].AsBinary;
        var key = RandomNumberGenerator.GetBytes(32);
        _meta.Insert(new BsonDocument { ["_id"] = "receiptKey", ["v"] = key });
        return key;
    }

    /// <summary>The query plan of a lookup, so tests can assert the index is used.</summary>
    internal string ExplainLookup(string key) =>
        _messages.Query().Where(BsonExpression.Create("$." + MessageCodec.LookupField + "[*] ANY = @0", new BsonValue(key))).GetPlan().ToString();

    internal string ExplainUnique(string key) =>
        _messages.Query().Where(BsonExpression.Create("$." + MessageCodec.UniqueField + " = @0", new BsonValue(key))).GetPlan().ToString();

    internal string ExplainDueChecks(long now) =>
        _messages.Query().Where(QueueRange(MessageCodec.CheckKey(0), MessageCodec.CheckKey(now))).GetPlan().ToString();

    public void Dispose()
    {
        try
        {
            _topicCounts.Save();
        }
        catch (LiteException)
        {
            // Nothing is lost: counts not stored are recounted above the watermark on the next open.
        }
        _sync?.Dispose();
        _db.Dispose();
        _lock.Dispose();
    }

    /// <summary>Closes the file the way a crash would leave it: counts not yet due are not stored.</summary>
    internal void DisposeAsIfCrashed()
    {
        _sync?.Dispose();
        _db.Dispose();
        _lock.Dispose();
    }

    internal StoredMessage? FindByUniqueKey(string key)
    {
        var expression = t_unique ??= BsonExpression.Create("$." + MessageCodec.UniqueField + " = @0", BsonValue.Null);
        expression.Parameters["0"] = key;
        var doc = _messages.Find(expression).FirstOrDefault();
        return doc is null ? null : MessageCodec.FromBson(doc);
    }

    [ThreadStatic]
    private static BsonExpression? t_unique;

    private IEnumerable<StoredMessage> FindByLookup(string key) =>
        _messages.Find(LookupExpression(key)).Select(MessageCodec.FromBson);

    private const long MaxTime = long.MaxValue / 1000;

    [ThreadStatic]
    private static BsonExpression? t_queueRange;

    /// <summary>A range of the due-time index. LiteDB's Query helpers write the values into the expression text, which then is parsed and compiled anew on every call; parameters avoid that.</summary>
    private static BsonExpression QueueRange(string from, string to)
    {
        var expression = t_queueRange ??= BsonExpression.Create("$." + MessageCodec.QueueField + " BETWEEN @0 AND @1", BsonValue.Null, BsonValue.Null);
        expression.Parameters["0"] = from;
        expression.Parameters["1"] = to;
        return expression;
    }

    // Parsing the expression costs more than the index seek it drives, so each thread parses it once
    // and only swaps the parameter (calls are synchronous, so a thread never shares it mid-query).
    [ThreadStatic]
    private static BsonExpression? t_lookup;

    private static BsonExpression LookupExpression(string key)
    {
        var expression = t_lookup ??= BsonExpression.Create("$." + MessageCodec.LookupField + "[*] ANY = @0", BsonValue.Null);
        expression.Parameters["0"] = key;
        return expression;
    }

    internal static string SubscriptionId(string group, string topic) => group + "\n" + topic;
}
