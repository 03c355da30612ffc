using HalfMsgBroker.Lifecycle;
using LiteDB;
using Npgsql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// The queries, each on an index of its own (see <see cref="PostgreSqlSchema"/>): listings walk it in id
/// order from the cursor and stop at the page (plus one row, to know whether another page follows);
/// open messages and filtered walks go in chunks, so no query holds more than a chunk.
/// </summary>
public sealed partial class PostgreSqlMessageStore
{
    private const int ScanChunk = 5000;

    // The queries are named so a test can read their plans (PostgreSqlQueryPlanTests): each walks an index in the order it returns, and stops.
    internal const string DueChecksSql = "SELECT data FROM halfmsg_messages WHERE check_at <= $1 ORDER BY check_at, id LIMIT $2";
    internal const string LatestDueChecksSql = "SELECT data FROM halfmsg_messages WHERE check_at <= $1 ORDER BY check_at DESC, id DESC LIMIT $2";
    internal const string DuePurgesSql = "SELECT id FROM halfmsg_messages WHERE purge_at <= $1 ORDER BY purge_at, id LIMIT $2";
    internal const string ExpiredDeadLettersSql =
        "SELECT consumer_group, topic, message_id FROM halfmsg_dead_letters WHERE dead_lettered_at < $1 ORDER BY dead_lettered_at LIMIT $2";
    internal const string OpenMessagesSql = "SELECT data FROM halfmsg_messages WHERE open AND id > $1 ORDER BY id LIMIT $2";
    internal const string KeySql = """
        SELECT m.data FROM halfmsg_message_keys k JOIN halfmsg_messages m ON m.id = k.message_id
        WHERE k.key = $1 AND k.message_id > $2 ORDER BY k.message_id LIMIT $3
        """;
    internal const string KeyOnTopicSql = """
        SELECT m.data FROM halfmsg_message_keys k JOIN halfmsg_messages m ON m.id = k.message_id
        WHERE k.key = $1 AND k.message_id > $2 AND m.topic = $4 ORDER BY k.message_id LIMIT $3
        """;
    internal const string DeadLetterIdsSql =
        "SELECT message_id FROM halfmsg_dead_letters WHERE consumer_group = $1 AND message_id > $2 ORDER BY message_id LIMIT $3";
    internal const string DeadLetterIdsOnTopicSql =
        "SELECT message_id FROM halfmsg_dead_letters WHERE consumer_group = $1 AND topic = $4 AND message_id > $2 ORDER BY message_id LIMIT $3";
    internal const string CommittedOnSql = """
        SELECT committed_at, id FROM halfmsg_messages
        WHERE topic = $1 AND committed_at IS NOT NULL AND (topic, committed_at, id) > ($1, $2, $3) AND committed_at <= $4
        ORDER BY committed_at, id LIMIT $5
        """;
    internal const string TransactionsSql = """
        SELECT data FROM halfmsg_messages WHERE transaction_id IS NOT NULL AND ($5::smallint IS NULL OR state = $5) AND id > $1
            AND ($2::text IS NULL OR producer_group = $2) AND ($3::text IS NULL OR topic = $3)
        ORDER BY id LIMIT $4
        """;
    internal const string PreparedTransactionsSql = """
        SELECT data FROM halfmsg_messages WHERE check_at IS NOT NULL AND state = 0 /* Prepared */ AND ($5::smallint IS NULL OR state = $5) AND id > $1
            AND ($2::text IS NULL OR producer_group = $2) AND ($3::text IS NULL OR topic = $3)
        ORDER BY id LIMIT $4
        """;

    public IReadOnlyList<StoredMessage> DueChecks(long now, int limit, bool latestFirst = false) =>
        Query(latestFirst ? LatestDueChecksSql : DueChecksSql, r => MessageBinary.Read((byte[])r[0]), now, (long)limit);

    public long? EarliestCheckDue() =>
        Query("SELECT check_at FROM halfmsg_messages WHERE check_at IS NOT NULL ORDER BY check_at LIMIT 1", r => (long?)r.GetInt64(0))
            .FirstOrDefault();

    public IReadOnlyList<Guid> DuePurges(long now, int limit) =>
        Query(DuePurgesSql, r => r.GetGuid(0), now, (long)limit);

    public IReadOnlyList<DeadLetterRef> ExpiredDeadLetters(long deadLetteredBefore, int limit) =>
        Query(ExpiredDeadLettersSql, r => new DeadLetterRef(r.GetString(0), r.GetString(1), r.GetGuid(2)), deadLetteredBefore, (long)limit);

    /// <summary>
    /// The open messages in id order, a chunk per query. Each row is decoded as it is read and only its
    /// <see cref="OpenMessage"/> kept: a chunk holds no bodies, so recovery's memory does not grow with body size.
    /// </summary>
    public IEnumerable<OpenMessage> OpenMessages()
    {
        var after = Guid.Empty;
        while (true)
        {
            var chunk = Query(OpenMessagesSql, r =>
            {
                var m = MessageBinary.Read((byte[])r[0]);
                return new OpenMessage(m.Id, m.Topic, m.DeliverAt, m.Deliveries, m.OrderingKey, m.CommitSeq);
            }, after, (long)ScanChunk);
            foreach (var m in chunk) yield return m;
            if (chunk.Count < ScanChunk) yield break;
            after = chunk[^1].Id;
        }
    }

    public StorePage<StoredMessage> FindByKey(string key, string? topic, Guid? after, int limit)
    {
        var rows = topic is null
            ? Query(KeySql, r => MessageBinary.Read((byte[])r[0]), key, after ?? Guid.Empty, (long)limit + 1)
            : Query(KeyOnTopicSql, r => MessageBinary.Read((byte[])r[0]), key, after ?? Guid.Empty, (long)limit + 1, topic);
        return Page(rows, limit, m => m.Id);
    }

    public StorePage<Guid> DeadLetterIds(string group, string? topic, Guid? after, int limit)
    {
        var ids = topic is null
            ? Query(DeadLetterIdsSql, r => r.GetGuid(0), group, after ?? Guid.Empty, (long)limit + 1)
            : Query(DeadLetterIdsOnTopicSql, r => r.GetGuid(0), group, after ?? Guid.Empty, (long)limit + 1, topic);
        return Page(ids, limit, id => id);
    }

    public StorePage<StoredMessage> DeadLetters(string group, string? topic, Guid? after, int limit)
    {
        var ids = DeadLetterIds(group, topic, after, limit);
        if (ids.Items.Count == 0) return new StorePage<StoredMessage>([], ids.Next);
        var messages = Query("SELECT data FROM halfmsg_messages WHERE id = ANY($1) ORDER BY id", r => MessageBinary.Read((byte[])r[0]), ids.Items.ToArray());
        // An entry and its message change in one transaction, but one may have changed since the ids were read (a redrive).
        return new StorePage<StoredMessage>(messages.Where(m => m.DeliveryFor(group)?.State == DeliveryState.DeadLettered).ToList(), ids.Next);
    }

    public IReadOnlyList<CommittedRef> CommittedOn(string topic, long from, long to, CommittedRef? after, int limit)
    {
        var (startAt, startId) = after is { } cursor ? (cursor.CommittedAt, cursor.Id) : (from, Guid.Empty);
        return Query(CommittedOnSql, r => new CommittedRef(r.GetInt64(0), r.GetGuid(1)), topic, startAt, startId, to, (long)limit);
    }

    public int CountDeadLetters(string group, string topic) => (int)Query(
        "SELECT count(*) FROM halfmsg_dead_letters WHERE consumer_group = $1 AND topic = $2", r => r.GetInt64(0), group, topic)[0];

    /// <summary>
    /// Walks transactions in id order, a chunk per query, and stops once <paramref name="limit"/> pass
    /// <paramref name="filter"/>. Prepared ones are the check queue's rows (what is in flight), the others
    /// every message holding a transactionId (its own index).
    /// </summary>
    public IReadOnlyList<StoredMessage> Transactions(
        MessageState? state, string? producerGroup, string? topic, Guid? after, int limit, Func<StoredMessage, bool> filter)
    {
        var sql = state == MessageState.Prepared ? PreparedTransactionsSql : TransactionsSql;
        short? stateValue = state is { } s ? (short)s : null;
        var found = new List<StoredMessage>(Math.Min(limit, 256));
        var cursor = after ?? Guid.Empty;
        var chunk = Math.Clamp(limit * 2, 64, ScanChunk);
        while (found.Count < limit)
        {
            var rows = Query(sql, r => MessageBinary.Read((byte[])r[0]), cursor, producerGroup, topic, (long)chunk, stateValue);
            foreach (var m in rows)
            {
                if (!filter(m)) continue;
                found.Add(m);
                if (found.Count == limit) break;
            }
            if (rows.Count < chunk) break;
            cursor = rows[^1].Id;
        }
        return found;
    }

    public IReadOnlyList<TopicCount> TopicCounts() =>
        Query("SELECT topic, greatest(0, n) FROM halfmsg_topic_counts ORDER BY topic", r => new TopicCount(r.GetString(0), r.GetInt64(1)));

    public IReadOnlyList<Subscription> Subscriptions() =>
        Query("SELECT doc FROM halfmsg_subscriptions ORDER BY id", r => LiteDbMessageStore.SubscriptionFrom(BsonSerializer.Deserialize((byte[])r[0])));

    public IReadOnlyList<ProducerGroup> ProducerGroups() =>
        Query("SELECT doc FROM halfmsg_producer_groups ORDER BY name", r => LiteDbMessageStore.ProducerGroupFrom(BsonSerializer.Deserialize((byte[])r[0])));

    public int ProducerGroupCount() => (int)Query("SELECT count(*) FROM halfmsg_producer_groups", r => r.GetInt64(0))[0];

    /// <summary>Index queries run outside a batch, like the journaled store's: inside one they would miss the batch's own writes.</summary>
    private List<T> Query<T>(string sql, Func<NpgsqlDataReader, T> map, params object?[] parameters)
    {
        if (InBatch) throw new InvalidOperationException("Index queries run outside a batch: inside one they would miss its own changes.");
        return PostgreSqlErrors.Read(_dataSource, connection =>
        {
            using var command = new NpgsqlCommand(sql, connection);
            foreach (var p in parameters) command.Parameters.Add(new NpgsqlParameter { Value = p ?? DBNull.Value });
            using var reader = command.ExecuteReader();
            var rows = new List<T>();
            while (reader.Read()) rows.Add(map(reader));
            return rows;
        });
    }

    /// <summary>Takes one page of rows read in id order with one row more than the page, to know whether another page follows.</summary>
    private static StorePage<T> Page<T>(List<T> rows, int limit, Func<T, Guid> idOf) =>
        rows.Count > limit ? new StorePage<T>(rows.GetRange(0, limit), idOf(rows[limit - 1])) : new StorePage<T>(rows, null);
}
