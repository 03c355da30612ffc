using System.Globalization;
using HalfMsgBroker.Lifecycle;
using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>
/// Hand-written BSON mapping (LiteDB's mapper is reflective and maps records unreliably). Short
/// field names keep documents small. Three derived fields drive the indexes:
/// <c>q</c>, the message's place in a due-time queue; <c>u</c>, what must be unique (transactionId or
/// Idempotency-Key); and <c>lk</c>, one entry per message key, ending in the message id so that a
/// key's messages lie in id order (dead letters have their own collection, see <see cref="DeadLetterCodec"/>).
/// </summary>
internal static class MessageCodec
{
    public const string QueueField = "q";
    public const string LookupField = "lk";
    public const string UniqueField = "u";

    /// <summary>A committed message's place in its topic's commit order: <c>&lt;topic&gt;␊&lt;committedAt&gt;&lt;id&gt;</c> (what a replay walks).</summary>
    public const string ReplayField = "r";

    public const string CheckPrefix = "c:";
    public const string PurgePrefix = "p:";
    /// <summary>Open (committed, deliveries still to make): <c>o:&lt;id as 32 hex digits&gt;</c>, unique, so recovery reads it in chunks.</summary>
    public const string OpenPrefix = "o:";

    /// <summary>How open messages were filed before 2026-11-30 (all under one key); rewritten once by <see cref="StoredMessageMigrations"/>.</summary>
    public const string LegacyOpen = "o";

    public static string OpenKey(Guid id) => OpenPrefix + IdKey(id);

    /// <summary>Fixed-width time then the id, so entries of one topic sort by commit time and page by key.</summary>
    public static string ReplayKey(string topic, long committedAt, Guid id) =>
        ReplayPrefix(topic) + committedAt.ToString("D15", CultureInfo.InvariantCulture) + IdKey(id);

    public static string ReplayPrefix(string topic) => topic + "\n";

    /// <summary>Only committed messages can be replayed; ResolvedAt is when every committed message was committed.</summary>
    public static string? ReplayKeyOf(StoredMessage m) =>
        m.State == MessageState.Committed && m.ResolvedAt != 0 ? ReplayKey(m.Topic, m.ResolvedAt, m.Id) : null;

    public static string CheckKey(long dueAt) => CheckPrefix + dueAt.ToString("D15", CultureInfo.InvariantCulture);
    public static string PurgeKey(long dueAt) => PurgePrefix + dueAt.ToString("D15", CultureInfo.InvariantCulture);
    public static string TransactionKey(string transactionId) => "x:" + transactionId;
    public static string IdempotencyKey(string topic, string key) => "i:" + topic + "\n" + key;

    /// <summary>
    /// A message key's entry: <c>mk:&lt;length&gt;:&lt;key&gt;&lt;id as 32 hex digits&gt;</c>. Keys may hold any
    /// character, so the length, not a separator, ends the key: only entries of this very key start
    /// with <see cref="MessageKeyPrefix"/>. Hex digits sort like <see cref="Guid.CompareTo(Guid)"/>.
    /// </summary>
    public static string MessageKey(string key, Guid id) => string.Create(CultureInfo.InvariantCulture, $"mk:{key.Length}:{key}{id:N}");

    public static string MessageKeyPrefix(string key) => "mk:" + key.Length.ToString(CultureInfo.InvariantCulture) + ":" + key;

    /// <summary>An id as it ends an index entry: 32 lowercase hex digits, in the order of <see cref="Guid.CompareTo(Guid)"/>.</summary>
    public static string IdKey(Guid id) => id.ToString("N");

    /// <summary>Past every id that can end an entry with this prefix (hex digits stop at 'f').</summary>
    public static string PrefixEnd(string prefix) => prefix + "g";

    /// <summary>Entries written before 2026-11-30: <c>k:&lt;key&gt;</c> and <c>d:&lt;group&gt;</c>, rewritten once by <see cref="LookupMigration"/>.</summary>
    public static readonly (string From, string To)[] LegacyLookupRanges = [("d:", "d;"), ("k:", "k;")];

    public static BsonDocument ToBson(StoredMessage m)
    {
        var doc = new BsonDocument
        {
            ["_id"] = m.Id,
            ["t"] = m.Topic,
            ["b"] = m.Body,
            ["s"] = (int)m.State,
            ["ba"] = m.BornAt,
        };
        if (m.Tag is not null) doc["g"] = m.Tag;
        if (m.Keys.Length > 0) doc["k"] = new BsonArray(m.Keys.Select(k => new BsonValue(k)));
        if (m.Properties is { Count: > 0 })
        {
            var props = new BsonDocument();
            foreach (var (key, value) in m.Properties) props[key] = value;
            doc["p"] = props;
        }
        if (m.TransactionId is not null) doc["x"] = m.TransactionId;
        if (m.Members.Length > 0) doc["mm"] = new BsonArray(m.Members.Select(id => new BsonValue(id)));
        if (m.InTransaction is not null) doc["xt"] = m.InTransaction;
        if (m.ProducerGroup is not null) doc["pg"] = m.ProducerGroup;
        if (m.IdempotencyKey is not null) doc["ik"] = m.IdempotencyKey;
        if (m.TraceParent is not null) doc["tp"] = m.TraceParent;
        if (m.OrderingKey is not null) doc["ok"] = m.OrderingKey;
        if (m.CommitSeq != 0) doc["cs"] = m.CommitSeq;
        if (m.DeliverAt != 0) doc["da"] = m.DeliverAt;
        if (m.CheckCount != 0) doc["cc"] = m.CheckCount;
        if (m.NextCheckAt != 0) doc["nc"] = m.NextCheckAt;
        if (m.LastCheckAt != 0) doc["lc"] = m.LastCheckAt;
        if (m.LastCheckResult is not null) doc["lr"] = m.LastCheckResult;
        if (m.UnreachableCount != 0) doc["ur"] = m.UnreachableCount;
        if (m.UnreachableStreak != 0) doc["us"] = m.UnreachableStreak;
        if (m.UnknownCount != 0) doc["uk"] = m.UnknownCount;
        if (m.ResolvedBy != ResolvedBy.None) doc["rb"] = (int)m.ResolvedBy;
        if (m.ResolvedAt != 0) doc["ra"] = m.ResolvedAt;
        if (m.PurgeAt != 0) doc["pa"] = m.PurgeAt;
        if (m.FiledCheckAt != 0) doc["fc"] = m.FiledCheckAt;
        if (m.Deliveries.Count > 0)
        {
            var deliveries = new BsonArray();
            foreach (var d in m.Deliveries) deliveries.Add(ToBson(d));
            doc["d"] = deliveries;
        }

        var queue = QueueKeyOf(m);
        if (queue is not null) doc[QueueField] = queue;
        doc[UniqueField] = UniqueKeyOf(m);
        if (ReplayKeyOf(m) is { } replay) doc[ReplayField] = replay;
        var lookups = LookupKeysOf(m);
        if (lookups.Count > 0) doc[LookupField] = lookups;
        return doc;
    }

    public static StoredMessage FromBson(BsonDocument doc)
    {
        var m = new StoredMessage
        {
            Id = doc["_id"].AsGuid,
            Topic = doc["t"].AsString,
            Body = doc["b"].AsBinary,
            BornAt = doc["ba"].AsInt64,
            Tag = StringOrNull(doc, "g"),
            Keys = doc.TryGetValue("k", out var keys) ? keys.AsArray.Select(k => k.AsString).ToArray() : [],
            Properties = doc.TryGetValue("p", out var props)
                ? props.AsDocument.ToDictionary(p => p.Key, p => p.Value.AsString, StringComparer.Ordinal)
                : null,
            TransactionId = StringOrNull(doc, "x"),
            Members = doc.TryGetValue("mm", out var members) ? members.AsArray.Select(id => id.AsGuid).ToArray() : [],
            InTransaction = StringOrNull(doc, "xt"),
            ProducerGroup = StringOrNull(doc, "pg"),
            IdempotencyKey = StringOrNull(doc, "ik"),
            TraceParent = StringOrNull(doc, "tp"),
            OrderingKey = StringOrNull(doc, "ok"),
            CommitSeq = Int64OrZero(doc, "cs"),
            State = (MessageState)doc["s"].AsInt32,
            DeliverAt = Int64OrZero(doc, "da"),
            CheckCount = doc.TryGetValue("cc", out var cc) ? cc.AsInt32 : 0,
            NextCheckAt = Int64OrZero(doc, "nc"),
            LastCheckAt = Int64OrZero(doc, "lc"),
            LastCheckResult = StringOrNull(doc, "lr"),
            UnreachableCount = doc.TryGetValue("ur", out var ur) ? ur.AsInt32 : 0,
            UnreachableStreak = doc.TryGetValue("us", out var us) ? us.AsInt32 : 0,
            UnknownCount = doc.TryGetValue("uk", out var uk) ? uk.AsInt32 : 0,
            ResolvedBy = doc.TryGetValue("rb", out var rb) ? (ResolvedBy)rb.AsInt32 : ResolvedBy.None,
            ResolvedAt = Int64OrZero(doc, "ra"),
            PurgeAt = Int64OrZero(doc, "pa"),
            FiledCheckAt = Int64OrZero(doc, "fc"),
        };
        if (doc.TryGetValue("d", out var deliveries))
        {
            foreach (var d in deliveries.AsArray) m.Deliveries.Add(DeliveryFromBson(d.AsDocument));
        }
        return m;
    }

    private static BsonDocument ToBson(StoredDelivery d)
    {
        var doc = new BsonDocument { ["g"] = d.Group, ["s"] = (int)d.State, ["a"] = d.Attempts };
        if (d.LastError is not null) doc["e"] = d.LastError;
        if (d.NextAttemptAt != 0) doc["n"] = d.NextAttemptAt;
        if (d.DeadLetteredAt != 0) doc["dl"] = d.DeadLetteredAt;
        return doc;
    }

    internal static StoredDelivery DeliveryFromBson(BsonDocument doc) => new()
    {
        Group = doc["g"].AsString,
        State = (DeliveryState)doc["s"].AsInt32,
        Attempts = doc["a"].AsInt32,
        LastError = StringOrNull(doc, "e"),
        NextAttemptAt = Int64OrZero(doc, "n"),
        DeadLetteredAt = Int64OrZero(doc, "dl"),
    };

    /// <summary>
    /// A message waits in at most one due-time queue: for its check, for delivery, or for purge. A
    /// commit moves it from the check queue to the open one (<see cref="StoredMessage.FiledCheckAt"/> no
    /// longer keeps it under its check time): so the check range holds only prepared messages, and
    /// recovery finds the open ones without reading a single prepared message.
    /// </summary>
    internal static string? QueueKeyOf(StoredMessage m)
    {
        // A multi-message transaction is checked through its first message; the others wait with it, in no queue.
        if (m.State == MessageState.Prepared) return m.InTransaction is null ? CheckKey(m.NextCheckAt) : null;
        if (DeliveryLifecycle.HasOpenDeliveries(m)) return OpenKey(m.Id);
        return m.PurgeAt != 0 ? PurgeKey(m.PurgeAt) : null;
    }

    /// <summary>
    /// What must be unique across the broker: the transactionId of a half message, the topic-scoped
    /// Idempotency-Key of a keyed send, or else the message id itself. The journal refuses a duplicate
    /// before it is stored (JournaledMessageStore.IsTaken); LiteDB's unique index is the last check.
    /// </summary>
    public static string UniqueKeyOf(StoredMessage m) => ProducerChosenKeyOf(m) ?? "m:" + m.Id.ToString("N");

    /// <summary>The unique key when a producer chose it (transactionId, Idempotency-Key), so it can be sent again; else null.</summary>
    public static string? ProducerChosenKeyOf(StoredMessage m) =>
        m.TransactionId is { } tx ? TransactionKey(tx)
        : m.IdempotencyKey is { } key ? IdempotencyKey(m.Topic, key)
        : null;

    private static BsonArray LookupKeysOf(StoredMessage m)
    {
        var keys = new BsonArray();
        foreach (var key in m.Keys) keys.Add(MessageKey(key, m.Id));
        return keys;
    }

    private static string? StringOrNull(BsonDocument doc, string field) =>
        doc.TryGetValue(field, out var v) && v.IsString ? v.AsString : null;

    private static long Int64OrZero(BsonDocument doc, string field) =>
        doc.TryGetValue(field, out var v) ? v.AsInt64 : 0;
}
