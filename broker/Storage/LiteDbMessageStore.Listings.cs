using HalfMsgBroker.Lifecycle;
using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>
/// Listings page inside LiteDB: each walks one index in id order from its cursor and stops once the
/// page is full (plus one entry, to know whether another page follows), so a page costs the same
/// however many entries lie beyond it.
/// </summary>
public sealed partial class LiteDbMessageStore
{
    public StorePage<StoredMessage> FindByKey(string key, string? topic, Guid? after, int limit)
    {
        var walk = KeyQuery(key, topic, after).ToEnumerable().Select(MessageCodec.FromBson).Where(m => m.Id != after);
        return Page(walk, limit, m => m.Id);
    }

    private ILiteQueryable<BsonDocument> KeyQuery(string key, string? topic, Guid? after)
    {
        var prefix = MessageCodec.MessageKeyPrefix(key);
        var query = _messages.Query().Where(Range(LookupEntries, From(prefix, after), MessageCodec.PrefixEnd(prefix)));
        // The topic is checked on each of the key's messages as the walk reaches them: the key is what is indexed.
        return topic is null ? query : query.Where("$.t = @0", topic);
    }

    /// <summary>Reads the dead-letter index alone (no document is loaded).</summary>
    public StorePage<Guid> DeadLetterIds(string group, string? topic, Guid? after, int limit)
    {
        var entries = DeadLetterEntries(group, topic, after)
            .ToEnumerable()
            .Select(doc => DeadLetterCodec.IdOfEntry(doc.Values.Single().AsString))
            .Where(id => id != after);
        return Page(entries, limit, id => id);
    }

    /// <summary>A group's entries are <c>g</c>; a group's of one topic are <c>_id</c>. Selecting the indexed field alone lets LiteDB answer from the index.</summary>
    private ILiteQueryableResult<BsonDocument> DeadLetterEntries(string group, string? topic, Guid? after)
    {
        var (field, prefix) = topic is null
            ? ("$." + DeadLetterCodec.GroupField, DeadLetterCodec.GroupPrefix(group))
            : ("$._id", DeadLetterCodec.TopicPrefix(group, topic));
        return _deadLetters.Query()
            .Where(Range(field + " BETWEEN @0 AND @1", From(prefix, after), MessageCodec.PrefixEnd(prefix)))
            .Select(field);
    }

    public StorePage<StoredMessage> DeadLetters(string group, string? topic, Guid? after, int limit)
    {
        var ids = DeadLetterIds(group, topic, after, limit);
        var messages = new List<StoredMessage>(ids.Items.Count);
        foreach (var id in ids.Items)
        {
            // An entry and its message change in one transaction, but one may have been applied since the walk (a redrive).
            if (Find(id) is { } m && m.DeliveryFor(group)?.State == DeliveryState.DeadLettered) messages.Add(m);
        }
        return new StorePage<StoredMessage>(messages, ids.Next);
    }

    /// <summary>Counted on the dead-letter index's keys alone (LiteDB loads no document for it).</summary>
    public int CountDeadLetters(string group, string topic) => _deadLetters.Count(TopicEntries(group, topic));

    private static BsonExpression TopicEntries(string group, string topic)
    {
        var prefix = DeadLetterCodec.TopicPrefix(group, topic);
        return Range("$._id BETWEEN @0 AND @1", prefix, MessageCodec.PrefixEnd(prefix));
    }

    public IReadOnlyList<DeadLetterRef> ExpiredDeadLetters(long deadLetteredBefore, int limit)
    {
        var expression = t_expired ??= BsonExpression.Create("$." + DeadLetterCodec.DeadLetteredAtField + " < @0", BsonValue.Null);
        expression.Parameters["0"] = deadLetteredBefore;
        return _deadLetters.Find(expression, 0, limit).Select(doc => DeadLetterCodec.FromId(doc["_id"].AsString)).ToList();
    }

    public IReadOnlyList<StoredMessage> Transactions(
        MessageState? state, string? producerGroup, string? topic, Guid? after, int limit, Func<StoredMessage, bool> filter)
    {
        if (state == MessageState.Prepared) return PreparedTransactions(producerGroup, topic, after, limit, filter);
        return TransactionQuery(state, producerGroup, topic, after).ToEnumerable().Select(MessageCodec.FromBson).Where(filter).Take(limit).ToList();
    }

    /// <summary>The id index in order from the cursor; LiteDB checks the fields on each document before it is decoded.</summary>
    private ILiteQueryable<BsonDocument> TransactionQuery(MessageState? state, string? producerGroup, string? topic, Guid? after)
    {
        var query = _messages.Query();
        if (after is { } cursor) query = query.Where("_id > @0", cursor);
        query = query.Where("$.x != null");
        if (state is { } s) query = query.Where("$.s = @0", (int)s);
        return WithOwner(query, producerGroup, topic);
    }

    /// <summary>
    /// Prepared transactions have their own index range (the check-back queue), ordered by due time,
    /// not id: walking it costs what is in flight, where the id index would walk every message kept
    /// for retention. The page is the <paramref name="limit"/> smallest ids after the cursor, kept in a
    /// heap of that size, so memory stays bounded however many are prepared.
    /// </summary>
    private List<StoredMessage> PreparedTransactions(string? producerGroup, string? topic, Guid? after, int limit, Func<StoredMessage, bool> filter)
    {
        var query = PreparedQuery(producerGroup, topic);
        var largestFirst = new PriorityQueue<StoredMessage, Guid>(limit + 1, Comparer<Guid>.Create((a, b) => b.CompareTo(a)));
        foreach (var m in query.ToEnumerable().Select(MessageCodec.FromBson))
        {
            if (after is { } cursor && m.Id.CompareTo(cursor) <= 0) continue;
            if (largestFirst.Count == limit && m.Id.CompareTo(largestFirst.Peek().Id) >= 0) continue;
            if (!filter(m)) continue;
            largestFirst.Enqueue(m, m.Id);
            if (largestFirst.Count > limit) largestFirst.Dequeue();
        }
        return largestFirst.UnorderedItems.Select(e => e.Element).OrderBy(m => m.Id).ToList();
    }

    private ILiteQueryable<BsonDocument> PreparedQuery(string? producerGroup, string? topic) => WithOwner(
        _messages.Query()
            .Where(Range("$." + MessageCodec.QueueField + " BETWEEN @0 AND @1", MessageCodec.CheckKey(0), MessageCodec.CheckKey(MaxTime)))
            .Where("$.s = @0", (int)MessageState.Prepared),
        producerGroup,
        topic);

    private static ILiteQueryable<BsonDocument> WithOwner(ILiteQueryable<BsonDocument> query, string? producerGroup, string? topic)
    {
        if (producerGroup is not null) query = query.Where("$.pg = @0", producerGroup);
        if (topic is not null) query = query.Where("$.t = @0", topic);
        return query;
    }

    /// <summary>Reads the commit-time index alone (no document is loaded).</summary>
    public IReadOnlyList<CommittedRef> CommittedOn(string topic, long from, long to, CommittedRef? after, int limit)
    {
        var start = after is { } cursor ? MessageCodec.ReplayKey(topic, cursor.CommittedAt, cursor.Id) : MessageCodec.ReplayKey(topic, from, Guid.Empty);
        var end = MessageCodec.ReplayKey(topic, to, Guid.Parse("ffffffff-ffff-ffff-ffff-ffffffffffff"));
        var field = "$." + MessageCodec.ReplayField;
        return _messages.Query()
            .Where(Range(field + " BETWEEN @0 AND @1", start, end))
            .Select(field)
            .Limit(limit + 1)
            .ToEnumerable()
            .Select(doc => CommittedRef.OfEntry(doc.Values.Single().AsString))
            .Where(r => r != after)
            .Take(limit)
            .ToList();
    }

    internal string ExplainCommittedOn(string topic) =>
        _messages.Query().Where(Range("$." + MessageCodec.ReplayField + " BETWEEN @0 AND @1", topic, topic + "g")).Select("$." + MessageCodec.ReplayField).GetPlan().ToString();

    /// <summary>Takes one page from a walk in id order, and one more item to know whether another page follows.</summary>
    private static StorePage<T> Page<T>(IEnumerable<T> walk, int limit, Func<T, Guid> idOf)
    {
        var items = new List<T>(Math.Min(limit, 256));
        foreach (var item in walk)
        {
            if (items.Count == limit) return new StorePage<T>(items, idOf(items[^1]));
            items.Add(item);
        }
        return new StorePage<T>(items, null);
    }

    /// <summary>Where a walk over entries <c>prefix + id</c> starts: at the cursor (skipped by the caller), or at the first entry.</summary>
    private static string From(string prefix, Guid? after) => after is { } id ? prefix + MessageCodec.IdKey(id) : prefix;

    private static readonly string LookupEntries = "$." + MessageCodec.LookupField + "[*] ANY BETWEEN @0 AND @1";

    /// <summary>A range of one index; the listings are not hot, so the expression is parsed per call.</summary>
    private static BsonExpression Range(string expression, string from, string to) =>
        BsonExpression.Create(expression, new BsonValue(from), new BsonValue(to));

    [ThreadStatic]
    private static BsonExpression? t_expired;

    /// <summary>Query plans, so tests can assert which index a listing walks and that it loads no document where it need not.</summary>
    internal string ExplainFindByKey(string key, string? topic = null) => KeyQuery(key, topic, null).GetPlan().ToString();

    internal string ExplainDeadLetterIds(string group, string? topic) => DeadLetterEntries(group, topic, null).GetPlan().ToString();

    /// <summary>The plan of what <see cref="ILiteCollection{T}.Count(BsonExpression)"/> runs.</summary>
    internal string ExplainCountDeadLetters(string group, string topic) =>
        _deadLetters.Query().Where(TopicEntries(group, topic)).Select("{ count: COUNT(*._id) }").GetPlan().ToString();

    internal string ExplainTransactions(MessageState? state, string? producerGroup, Guid? after) => state == MessageState.Prepared
        ? PreparedQuery(producerGroup, null).GetPlan().ToString()
        : TransactionQuery(state, producerGroup, null, after).GetPlan().ToString();
}
