using System.Security.Cryptography;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The embedded LiteDB store. LiteDB transactions belong to the OS thread, so every write runs on
/// one thread inside <see cref="RunBatch"/> (in the broker, the applier of
/// <see cref="JournaledMessageStore"/>); reads elsewhere see committed snapshots. The listings and
/// counts are in <c>LiteDbMessageStore.Listings.cs</c>.
/// </summary>
public sealed partial class LiteDbMessageStore : IMessageStore
{
    private const string FileName = "broker.db";

    private readonly LiteDatabase _db;
    private readonly ILiteCollection<BsonDocument> _messages;
    private readonly ILiteCollection<BsonDocument> _producerGroups;
    private readonly ILiteCollection<BsonDocument> _subscriptions;
    private readonly ILiteCollection<BsonDocument> _topics;
    private readonly ILiteCollection<BsonDocument> _meta;
    private readonly ILiteCollection<BsonDocument> _deadLetters;
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
        _deadLetters = _db.GetCollection("deadLetters");

        try
        {
            // Four secondary indexes carry every lookup: q (due-time queues), u (unique keys), lk (message keys) and r (commit order, for replays).
            _messages.EnsureIndex(MessageCodec.QueueField, "$." + MessageCodec.QueueField);
            _messages.EnsureIndex(MessageCodec.UniqueField, "$." + MessageCodec.UniqueField, unique: true);
            _messages.EnsureIndex(MessageCodec.LookupField, "$." + MessageCodec.LookupField + "[*]");
            _messages.EnsureIndex(MessageCodec.ReplayField, "$." + MessageCodec.ReplayField);
            _deadLetters.EnsureIndex(DeadLetterCodec.GroupField, "$." + DeadLetterCodec.GroupField);
            _deadLetters.EnsureIndex(DeadLetterCodec.MessageField, "$." + DeadLetterCodec.MessageField);
            _deadLetters.EnsureIndex(DeadLetterCodec.DeadLetteredAtField, "$." + DeadLetterCodec.DeadLetteredAtField);
            LookupMigration.Run(_db, _messages, _deadLetters, notice);
            StoredMessageMigrations.Run(_db, _messages, _meta, notice);
        }
        catch
        {
            _db.Dispose();
            _lock.Dispose();
            throw;
        }

        _topicCounts = new TopicCounts(_topics, _meta, _messages);
        if (durability == Durability.Fsync)
        {
            _sync = new LogFileSync(file);
            // LiteDB never fsyncs the folder: a data file it just created (or a migration renamed) must not vanish in a power loss.
            DirectorySync.Flush(dataPath);
        }
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

    public void PutDeadLetter(DeadLetterRef deadLetter, long deadLetteredAt) => _deadLetters.Upsert(DeadLetterCodec.ToBson(deadLetter, deadLetteredAt));

    public void DeleteDeadLetter(DeadLetterRef deadLetter) => _deadLetters.Delete(DeadLetterCodec.Id(deadLetter));

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
        // Written only when set, so groups stored before these limits existed follow the broker's defaults.
        if (group.MaxChecksInFlight is { } inFlight) doc["mf"] = inFlight;
        if (group.MaxChecksPerSecond is { } perSecond) doc["mr"] = perSecond;
        return doc;
    }

    internal static ProducerGroup ProducerGroupFrom(BsonDocument doc) =>
        new(doc["_id"].AsString, doc["u"].IsNull ? null : doc["u"].AsString, doc["to"].AsInt32, ReadSigning(doc),
            doc.TryGetValue("mf", out var inFlight) ? inFlight.AsInt32 : null,
            doc.TryGetValue("mr", out var perSecond) ? perSecond.AsInt32 : null);

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
        // Only a paused subscription carries the field, so documents written before pausing existed read the same.
        if (s.Paused) doc["pa"] = true;
        return doc;
    }

    public void DeleteSubscription(string group, string topic) => _subscriptions.Delete(SubscriptionId(group, topic));

    /// <summary>Gives the core back between documents while <see cref="Apply"/> runs (replaced by tests).</summary>
    internal ApplierYield ApplyYield { get; set; } = new();

    /// <summary>
    /// Applier thread: stores a set of journaled changes in one transaction, together with the last
    /// journal frame they include. Deletes go first, so a unique key freed by one is free for an insert.
    /// <paramref name="updateFirst"/>: LiteDB may hold some of them already (a replay, a retry), so every
    /// new message is updated, or inserted if that finds nothing; and each message's dead-letter
    /// entries are derived again from its stored state, since a journal written before the
    /// <c>deadLetters</c> collection existed carries none.
    /// </summary>
    internal void Apply(ChangeSet changes, bool updateFirst = false)
    {
        ApplyYield.Start();
        // Documents are built before the transaction, so LiteDB's locks are held only for the writes.
        var documents = new List<(MessageChange Change, BsonDocument Doc)>(changes.Messages.Count);
        foreach (var change in changes.Messages.Values)
        {
            if (change.Message is { } message) documents.Add((change, MessageCodec.ToBson(message)));
            ApplyYield.Between();
        }
        RunBatch(() =>
        {
            foreach (var (id, change) in changes.Messages)
            {
                if (change.Message is null && change.InDb && _messages.Delete(id)) _topicCounts.Deleted();
                ApplyYield.Between();
            }
            foreach (var ((collection, id), doc) in changes.Documents)
            {
                var target = collection switch
                {
                    DocumentCollection.ProducerGroups => _producerGroups,
                    DocumentCollection.Subscriptions => _subscriptions,
                    DocumentCollection.DeadLetters => _deadLetters,
                    _ => throw new InvalidDataException($"Unknown document collection {(byte)collection} in the journal."),
                };
                if (doc is null) target.Delete(id);
                else target.Upsert(doc);
            }
            foreach (var (change, doc) in documents)
            {
                ApplyYield.Between();
                if ((change.InDb || updateFirst) && _messages.Update(doc)) continue;
                _messages.Insert(doc);
                _topicCounts.Inserted(change.Message!.Id);
            }
            if (updateFirst)
            {
                foreach (var (id, change) in changes.Messages) RederiveDeadLetters(id, change.Message);
            }
            _meta.Upsert(new BsonDocument { ["_id"] = JournalMarkId, ["v"] = changes.LastSeq });
            _topicCounts.Add(changes.TopicDeltas, Environment.TickCount64);
        });
    }

    /// <summary>Replaces the dead-letter entries of one message with the ones its stored state holds.</summary>
    private void RederiveDeadLetters(Guid id, StoredMessage? message)
    {
        var ofMessage = t_ofMessage ??= BsonExpression.Create("$." + DeadLetterCodec.MessageField + " = @0", BsonValue.Null);
        ofMessage.Parameters["0"] = id;
        _deadLetters.DeleteMany(ofMessage);
        if (message is null) return;
        foreach (var (deadLetter, at) in DeadLetterCodec.Of(message)) _deadLetters.Upsert(DeadLetterCodec.ToBson(deadLetter, at));
    }

    [ThreadStatic]
    private static BsonExpression? t_ofMessage;

    /// <summary>The last journal frame LiteDB holds (0 for a new data file).</summary>
    internal long AppliedJournalSeq() => _meta.FindById(JournalMarkId)?["v"].AsInt64 ?? 0;

    /// <summary>The last journal frame the data file records, read without changing the file (null when there is no data file).</summary>
    internal static long? ReadAppliedJournalSeq(string dataPath)
    {
        var file = Path.Combine(dataPath, FileName);
        if (!File.Exists(file)) return null;
        // LiteDB deletes an empty log file when it closes, even read-only: an empty log is handed over as an empty
        // stream instead, so a refused start leaves even that file in place.
        var log = Path.Combine(dataPath, Path.GetFileNameWithoutExtension(FileName) + "-log" + Path.GetExtension(FileName));
        var settings = new LiteDB.Engine.EngineSettings { Filename = file, ReadOnly = true };
        if (new FileInfo(log) is { Exists: true, Length: 0 }) settings.LogStream = new MemoryStream();
        using var db = new LiteDatabase(new LiteDB.Engine.LiteEngine(settings));
        return db.GetCollection("meta").FindById(JournalMarkId)?["v"].AsInt64 ?? 0;
    }

    /// <summary>
    /// Every stored transactionId and Idempotency-Key, read from the unique index alone, in chunks that
    /// are each their own query (see <see cref="OpenMessages"/>: one query would pin every index page).
    /// </summary>
    internal IEnumerable<string> ProducerChosenKeys()
    {
        foreach (var prefix in new[] { "x:", "i:" })
        {
            var from = prefix;
            var to = prefix[..^1] + ";"; // past every key with the prefix: ';' follows ':'
            while (true)
            {
                var range = BsonExpression.Create("$." + MessageCodec.UniqueField + " BETWEEN @0 AND @1", new BsonValue(from), new BsonValue(to));
                var chunk = _messages.Query().Where(range).Select("$." + MessageCodec.UniqueField).Limit(ScanChunk).ToList();
                foreach (var doc in chunk)
                {
                    foreach (var (_, value) in doc)
                    {
                        if (value.AsString != from) yield return value.AsString;
                    }
                }
                if (chunk.Count < ScanChunk) break;
                from = chunk[^1].Values.Single().AsString;
            }
        }
    }

    internal string ExplainProducerChosenKeys() =>
        _messages.Query().Where(BsonExpression.Create("$." + MessageCodec.UniqueField + " BETWEEN @0 AND @1", new BsonValue("x:"), new BsonValue("x;")))
            .Select("$." + MessageCodec.UniqueField).Limit(ScanChunk).GetPlan().ToString();

    private const string JournalMarkId = "journalApplied";

    public int ProducerGroupCount() => _producerGroups.Count();

    public IReadOnlyList<ProducerGroup> ProducerGroups() =>
        _producerGroups.FindAll().Select(ProducerGroupFrom).OrderBy(g => g.Name, StringComparer.Ordinal).ToList();

    public IReadOnlyList<Subscription> Subscriptions() => _subscriptions.FindAll().Select(SubscriptionFrom).ToList();

    internal static Subscription SubscriptionFrom(BsonDocument doc) => new(
        doc["g"].AsString,
        doc["t"].AsString,
        TagFilter.TryParse(doc["f"].AsString, out _) ?? TagFilter.All,
        doc.TryGetValue("pu", out var url) ? new PushTarget(url.AsString, doc["pt"].AsInt32) : null,
        doc["m"].AsInt32,
        (ExhaustedAction)doc["x"].AsInt32,
        doc["c"].AsInt64,
        ReadSigning(doc),
        doc.TryGetValue("pa", out var paused) && paused.AsBoolean);

    public IReadOnlyList<StoredMessage> DueChecks(long now, int limit, bool latestFirst = false) => latestFirst
        ? LatestDueChecksQuery(now).Limit(limit).ToEnumerable().Select(MessageCodec.FromBson).ToList()
        : _messages.Find(QueueRange(MessageCodec.CheckKey(0), MessageCodec.CheckKey(now)), 0, limit)
            .Select(MessageCodec.FromBson).ToList();

    /// <summary>Ordered by the index's own expression, so LiteDB walks the index backwards instead of sorting the range.</summary>
    private ILiteQueryable<BsonDocument> LatestDueChecksQuery(long now) =>
        _messages.Query().Where(QueueRange(MessageCodec.CheckKey(0), MessageCodec.CheckKey(now))).OrderByDescending("$." + MessageCodec.QueueField);

    internal string ExplainLatestDueChecks(long now) => LatestDueChecksQuery(now).Limit(10).GetPlan().ToString();

    public long? EarliestCheckDue()
    {
        var doc = _messages.Find(QueueRange(MessageCodec.CheckKey(0), MessageCodec.CheckKey(MaxTime)), 0, 1)
            .FirstOrDefault();
        return doc is null ? null : MessageCodec.FromBson(doc).NextCheckAt;
    }

    public IReadOnlyList<Guid> DuePurges(long now, int limit) =>
        _messages.Find(QueueRange(MessageCodec.PurgeKey(0), MessageCodec.PurgeKey(now)), 0, limit)
            .Select(doc => doc["_id"].AsGuid).ToList();

    /// <summary>
    /// The open range in chunks, each its own query: LiteDB keeps every page a query reads until the query
    /// ends, and never gives the memory back, so one query over every open message would pin them all.
    /// Only the fields recovery needs are projected; the keys are unique (<c>o:&lt;id&gt;</c>), so each chunk
    /// starts at the last key of the one before.
    /// </summary>
    public IEnumerable<OpenMessage> OpenMessages()
    {
        var from = MessageCodec.OpenPrefix;
        var to = MessageCodec.PrefixEnd(MessageCodec.OpenPrefix);
        while (true)
        {
            var projection = t_openProjection ??= BsonExpression.Create(
                "{_id: $._id, t: $.t, da: $.da, d: $.d, ok: $.ok, cs: $.cs, " + MessageCodec.QueueField + ": $." + MessageCodec.QueueField + "}");
            var chunk = _messages.Query().Where(QueueRange(from, to)).Select(projection).Limit(ScanChunk).ToList();
            foreach (var doc in chunk)
            {
                var key = doc[MessageCodec.QueueField].AsString;
                if (key == from) continue; // the last of the previous chunk
                var deliveries = new List<StoredDelivery>();
                if (doc["d"].IsArray)
                {
                    foreach (var d in doc["d"].AsArray) deliveries.Add(MessageCodec.DeliveryFromBson(d.AsDocument));
                }
                yield return new OpenMessage(doc["_id"].AsGuid, doc["t"].AsString, doc["da"].IsNull ? 0 : doc["da"].AsInt64, deliveries,
                    doc["ok"].IsString ? doc["ok"].AsString : null, doc["cs"].IsNull ? 0 : doc["cs"].AsInt64);
            }
            if (chunk.Count < ScanChunk) yield break;
            from = chunk[^1][MessageCodec.QueueField].AsString;
        }
    }

    private const int ScanChunk = 5000;

    [ThreadStatic]
    private static BsonExpression? t_openProjection;

    public IReadOnlyList<TopicCount> TopicCounts() => _topicCounts.All();

    public byte[] ReceiptKey()
    {
        var doc = _meta.FindById("receiptKey");
        if (doc is not null) return doc["v"].AsBinary;
        var key = RandomNumberGenerator.GetBytes(32);
        _meta.Insert(new BsonDocument { ["_id"] = "receiptKey", ["v"] = key });
        return key;
    }

    internal string ExplainUnique(string key) =>
        _messages.Query().Where(BsonExpression.Create("$." + MessageCodec.UniqueField + " = @0", new BsonValue(key))).GetPlan().ToString();

    internal string ExplainOpenMessages() =>
        _messages.Query().Where(QueueRange(MessageCodec.OpenPrefix, MessageCodec.PrefixEnd(MessageCodec.OpenPrefix))).Limit(ScanChunk).GetPlan().ToString();

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

    internal static string SubscriptionId(string group, string topic) => group + "\n" + topic;
}
