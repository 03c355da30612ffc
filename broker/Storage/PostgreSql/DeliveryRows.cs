using Npgsql;
using NpgsqlTypes;
using static HalfMsgBroker.Storage.PostgreSql.BatchSql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>A delivery claimed from <c>halfmsg_deliveries</c>: leased to the caller under <see cref="Nonce"/>.</summary>
internal readonly record struct ClaimedRow(Guid MessageId, ulong Nonce, int Attempts, string? OrderingKey);

/// <summary>A lease taken for settling (a nack or a failed push; an ack is checked inside the writer's batch instead): the row's lease is void (nonce 0) until the writer stores the outcome.</summary>
internal readonly record struct SettlingRow(Guid MessageId, string Topic, int Attempts, ulong Nonce, long LeaseEnd);

/// <summary>
/// The claims, settlements and readings of <c>halfmsg_deliveries</c> (<c>MultiActive</c>), outside the writer's batches:
/// each statement is its own transaction on a pooled connection. The rows themselves are written with their messages
/// (<see cref="DeliveryRowWrites"/>). Times are Unix milliseconds of the broker's clock.
/// </summary>
internal sealed class DeliveryRows(NpgsqlDataSource dataSource)
{
    /// <summary>How long a lease taken for settling holds the row while the writer stores the outcome.</summary>
    public const long SettleHoldMs = 30_000;

    /// <summary>
    /// Up to <paramref name="max"/> due rows of the subscription, skipping rows another claim holds, and of an ordering key
    /// only its earliest live row (in commit order) while none of the key is leased (a redriven earlier one waits for the
    /// one out): leased until <paramref name="leaseEnd"/>, each with a new nonce and one attempt more. The messages of the
    /// rows still within maxAttempts ($6) come back with them (null: purged meanwhile), so a receive is one round trip.
    /// </summary>
    private const string ClaimSql = """
        WITH claimed AS (
            UPDATE halfmsg_deliveries d
            SET visible_at = $4, nonce = (floor(random() * 9007199254740990) + 1)::bigint, attempts = d.attempts + 1
            FROM (
                SELECT c.message_id, c.consumer_group FROM halfmsg_deliveries c
                WHERE c.consumer_group = $1 AND c.topic = $2 AND c.visible_at <= $3
                    AND (c.ordering_key IS NULL OR NOT EXISTS (
                        SELECT 1 FROM halfmsg_deliveries e
                        WHERE e.consumer_group = c.consumer_group AND e.topic = c.topic AND e.ordering_key = c.ordering_key
                            AND e.message_id <> c.message_id AND (e.commit_seq < c.commit_seq OR (e.nonce <> 0 AND e.visible_at > $3))))
                ORDER BY c.visible_at, c.message_id
                LIMIT $5
                FOR UPDATE SKIP LOCKED) s
            WHERE d.message_id = s.message_id AND d.consumer_group = s.consumer_group
            RETURNING d.message_id, d.nonce, d.attempts, d.ordering_key)
        SELECT c.message_id, c.nonce, c.attempts, c.ordering_key, CASE WHEN c.attempts <= $6 THEN m.data END
        FROM claimed c LEFT JOIN halfmsg_messages m ON m.id = c.message_id
        """;

    /// <summary>
    /// Claims rows (see <see cref="ClaimSql"/>), in message id order, each with its message's encoding when within
    /// <paramref name="maxAttempts"/>. The claim's transaction commits without waiting for its WAL flush
    /// (<c>synchronous_commit = off</c> for it alone): a lease is no promise to anyone, so a PostgreSQL crash that forgets
    /// the last claims only hands those deliveries out again (at least once; the handles given are stale, and the
    /// attempt is not counted), while every receive stops paying a flush of its own. Sends, commits and acks keep theirs.
    /// </summary>
    public async Task<List<(ClaimedRow Row, byte[]? Data)>> ClaimAsync(string group, string topic, int max, long now, long leaseEnd, int maxAttempts)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            // One round trip: the transaction is begun and committed by statements of the batch. Should the claim fail, the
            // COMMIT is skipped and the connection's return to the pool rolls the transaction back.
            await using var batch = new NpgsqlBatch(connection)
            {
                BatchCommands =
                {
                    new NpgsqlBatchCommand("BEGIN"),
                    new NpgsqlBatchCommand("SET LOCAL synchronous_commit = off"),
                    ClaimCommand(group, topic, max, now, leaseEnd, maxAttempts),
                    new NpgsqlBatchCommand("COMMIT"),
                },
            };
            var rows = new List<(ClaimedRow Row, byte[]? Data)>();
            await using (var reader = await batch.ExecuteReaderAsync())
            {
                // BEGIN and SET return no result set, so the reader starts on the claim's.
                while (await reader.ReadAsync())
                {
                    rows.Add((new ClaimedRow(reader.GetGuid(0), unchecked((ulong)reader.GetInt64(1)), reader.GetInt32(2), reader.IsDBNull(3) ? null : reader.GetString(3)),
                        reader.IsDBNull(4) ? null : (byte[])reader[4]));
                }
            }
            rows.Sort((a, b) => a.Row.MessageId.CompareTo(b.Row.MessageId));
            return rows;
        }
        catch (Exception e) when (PostgreSqlErrors.Translate(e) is var translated && translated != e)
        {
            throw translated;
        }
    }

    private static NpgsqlBatchCommand ClaimCommand(string group, string topic, int max, long now, long leaseEnd, int maxAttempts)
    {
        var command = new NpgsqlBatchCommand(ClaimSql);
        command.Parameters.Add(P(group));
        command.Parameters.Add(P(topic));
        command.Parameters.Add(P(now));
        command.Parameters.Add(P(leaseEnd));
        command.Parameters.Add(P((long)max));
        command.Parameters.Add(P(maxAttempts));
        return command;
    }

    /// <summary>Takes the leases still held (nonce matches, lease not run out) for settling; the others are stale.</summary>
    public Task<List<SettlingRow>> BeginSettleAsync(string group, IReadOnlyList<(Guid MessageId, ulong Nonce)> leases, long now) =>
        QueryAsync("""
            UPDATE halfmsg_deliveries d SET nonce = 0, visible_at = greatest(d.visible_at, $4)
            FROM (
                SELECT x.message_id, x.nonce AS held, x.visible_at AS lease_end FROM halfmsg_deliveries x
                JOIN unnest($2::uuid[], $3::bigint[]) AS u(id, nonce) ON x.message_id = u.id AND x.nonce = u.nonce
                WHERE x.message_id = ANY ($2::uuid[]) AND x.consumer_group = $1 AND x.nonce <> 0 AND x.visible_at > $5
                FOR UPDATE OF x) o
            WHERE d.message_id = o.message_id AND d.consumer_group = $1
            RETURNING d.message_id, d.topic, d.attempts, o.held, o.lease_end
            """,
            r => new SettlingRow(r.GetGuid(0), r.GetString(1), r.GetInt32(2), unchecked((ulong)r.GetInt64(3)), r.GetInt64(4)),
            P(group), Array(NpgsqlDbType.Uuid, leases.Select(l => l.MessageId)), Array(NpgsqlDbType.Bigint, leases.Select(l => unchecked((long)l.Nonce))),
            P(now + SettleHoldMs), P(now));

    /// <summary>A settlement the store refused: the lease is held again under its nonce until its old end.</summary>
    public Task RestoreLeaseAsync(string group, SettlingRow row) => ExecuteAsync(
        "UPDATE halfmsg_deliveries SET nonce = $3, visible_at = $4 WHERE message_id = $1 AND consumer_group = $2 AND nonce = 0",
        P(row.MessageId), P(group), P(unchecked((long)row.Nonce)), P(row.LeaseEnd));

    /// <summary>Lets a delivery go: visible again at <paramref name="visibleAt"/>, with no lease; <paramref name="uncount"/>: its attempt did not count.</summary>
    public Task ReleaseAsync(string group, Guid messageId, long visibleAt, bool uncount = false) => ExecuteAsync(
        "UPDATE halfmsg_deliveries SET nonce = 0, visible_at = $3, attempts = greatest(0, attempts - $4) WHERE message_id = $1 AND consumer_group = $2",
        P(messageId), P(group), P(visibleAt), P(uncount ? 1 : 0));

    /// <summary>
    /// The nonce of a row whose time-out is being stored: no consumer's (theirs are positive), so the handle is stale, and
    /// not a settlement's 0 either: until the writer stores the time-out the delivery is still in flight (not retrying, not
    /// to be brought forward by retry-now), and a broker that dies meanwhile leaves a lease that runs out and is taken again.
    /// </summary>
    internal const long StoringTimeout = -1;

    /// <summary>
    /// Up to <paramref name="max"/> leases that ran out (of any subscription, any broker), held for <paramref name="holdUntil"/>
    /// under <see cref="StoringTimeout"/> so that one broker stores each time-out, and the writer's row reset may follow
    /// (it resets any row without a consumer's lease): the consumer's handle is stale from here on.
    /// </summary>
    public Task<List<(Guid MessageId, string Group, string Topic, int Attempts)>> TakeExpiredAsync(long now, long holdUntil, int max) => QueryAsync("""
        UPDATE halfmsg_deliveries d SET nonce = -1, visible_at = $2
        FROM (
            SELECT message_id, consumer_group FROM halfmsg_deliveries
            WHERE nonce <> 0 AND visible_at <= $1 ORDER BY visible_at LIMIT $3 FOR UPDATE SKIP LOCKED) s
        WHERE d.message_id = s.message_id AND d.consumer_group = s.consumer_group
        RETURNING d.message_id, d.consumer_group, d.topic, d.attempts
        """, r => (r.GetGuid(0), r.GetString(1), r.GetString(2), r.GetInt32(3)), P(now), P(holdUntil), P((long)max));

    /// <summary>A time-out the store refused: still held under <see cref="StoringTimeout"/>, until <paramref name="until"/>, then taken again.</summary>
    public Task HoldAsync(string group, Guid messageId, long until) => ExecuteAsync(
        "UPDATE halfmsg_deliveries SET visible_at = $3 WHERE message_id = $1 AND consumer_group = $2 AND nonce = -1",
        P(messageId), P(group), P(until));

    /// <summary>Removes a row whose message is gone (purged meanwhile).</summary>
    public Task ForgetAsync(string group, Guid messageId) => ExecuteAsync(
        "DELETE FROM halfmsg_deliveries WHERE message_id = $1 AND consumer_group = $2", P(messageId), P(group));

    /// <summary>Moves a held lease's end; false when the lease is no longer held.</summary>
    public bool ChangeVisibility(string group, Guid messageId, ulong nonce, long visibleAt, long now) => Read(c =>
    {
        using var command = Command(c, """
            UPDATE halfmsg_deliveries SET visible_at = $4
            WHERE message_id = $1 AND consumer_group = $2 AND nonce = $3 AND nonce <> 0 AND visible_at > $5
            """, P(messageId), P(group), P(unchecked((long)nonce)), P(visibleAt), P(now));
        return command.ExecuteNonQuery() == 1;
    });

    /// <summary>Ready (due, or held back by its ordering key), in flight (leased) and waiting (a delay or a retry backoff).</summary>
    public (int Ready, int InFlight, int Waiting) Counts(string group, string topic, long now) => Read(c =>
    {
        using var command = Command(c, """
            SELECT count(*) FILTER (WHERE visible_at <= $3), count(*) FILTER (WHERE visible_at > $3 AND nonce <> 0),
                count(*) FILTER (WHERE visible_at > $3 AND nonce = 0)
            FROM halfmsg_deliveries WHERE consumer_group = $1 AND topic = $2
            """, P(group), P(topic), P(now));
        using var reader = command.ExecuteReader();
        reader.Read();
        return ((int)reader.GetInt64(0), (int)reader.GetInt64(1), (int)reader.GetInt64(2));
    });

    /// <summary>A delivery's row: its lease nonce (0: none), attempts and due time or lease end; null when it has none.</summary>
    public (ulong Nonce, int Attempts, long VisibleAt)? Find(string group, Guid messageId) => Read(c =>
    {
        using var command = Command(c, "SELECT nonce, attempts, visible_at FROM halfmsg_deliveries WHERE message_id = $1 AND consumer_group = $2",
            P(messageId), P(group));
        using var reader = command.ExecuteReader();
        return reader.Read() ? (unchecked((ulong)reader.GetInt64(0)), reader.GetInt32(1), reader.GetInt64(2)) : ((ulong, int, long)?)null;
    });

    /// <summary>The subscription's deliveries waiting for a retry backoff: attempted, not leased, due later.</summary>
    public List<Guid> RetryingIds(string group, string topic, long now) => ReadList(
        "SELECT message_id FROM halfmsg_deliveries WHERE consumer_group = $1 AND topic = $2 AND visible_at > $3 AND nonce = 0 AND attempts > 0",
        r => r.GetGuid(0), P(group), P(topic), P(now));

    /// <summary>Every live delivery of a subscription (to drop once it is deleted).</summary>
    public List<Guid> Ids(string group, string topic) => ReadList(
        "SELECT message_id FROM halfmsg_deliveries WHERE consumer_group = $1 AND topic = $2", r => r.GetGuid(0), P(group), P(topic));

    /// <summary>The subscriptions that have rows: a walk over the claim index, one step per subscription.</summary>
    public List<(string Group, string Topic)> Subscriptions() => ReadList("""
        WITH RECURSIVE s AS (
            (SELECT consumer_group, topic FROM halfmsg_deliveries ORDER BY consumer_group, topic LIMIT 1)
            UNION ALL
            SELECT n.consumer_group, n.topic FROM s, LATERAL (
                SELECT d.consumer_group, d.topic FROM halfmsg_deliveries d
                WHERE (d.consumer_group, d.topic) > (s.consumer_group, s.topic) ORDER BY d.consumer_group, d.topic LIMIT 1) n)
        SELECT consumer_group, topic FROM s
        """, r => (r.GetString(0), r.GetString(1)));

    /// <summary>The earliest due time or lease end after <paramref name="now"/> (an index walk), or null.</summary>
    public long? EarliestAfter(long now) => Read(c =>
    {
        using var command = Command(c, "SELECT min(visible_at) FROM halfmsg_deliveries WHERE visible_at > $1", P(now));
        return command.ExecuteScalar() is long at ? at : (long?)null;
    });

    /// <summary>The <c>halfmsg_meta</c> entry that says the rows are kept in step with the messages.</summary>
    private const string KeptMarker = "deliveryRows";

    /// <summary>
    /// Makes the rows once for a database whose brokers did not keep them (new in schema V3, or run without
    /// <c>MultiActive</c> since): one row per live delivery of the open messages, in one transaction under an advisory
    /// lock, so the first of several brokers starting at once fills the table and the others find it kept.
    /// </summary>
    /// <returns>How many rows were made (0: the table was already kept).</returns>
    public static int Backfill(NpgsqlDataSource dataSource, IDueTimes due, long now)
    {
        try
        {
            using var connection = dataSource.OpenConnection();
            using var transaction = connection.BeginTransaction();
            using (var lockCommand = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({PostgreSqlSchema.MigrationLockKey + 2})", connection, transaction)) lockCommand.ExecuteNonQuery();
            using (var kept = new NpgsqlCommand("SELECT 1 FROM halfmsg_meta WHERE key = $1", connection, transaction))
            {
                kept.Parameters.Add(P(KeptMarker));
                if (kept.ExecuteScalar() is not null) return 0;
            }
            var made = 0;
            foreach (var chunk in due.OpenMessages().SelectMany(DeliveryRowWrites.LiveRows).Chunk(5000))
            {
                using var batch = new NpgsqlBatch(connection, transaction);
                batch.BatchCommands.Add(DeliveryRowWrites.Upsert(chunk, now));
                batch.ExecuteNonQuery();
                made += chunk.Length;
            }
            using (var mark = new NpgsqlCommand("INSERT INTO halfmsg_meta (key, value) VALUES ($1, $2)", connection, transaction))
            {
                mark.Parameters.Add(P(KeptMarker));
                mark.Parameters.Add(P(new byte[] { 1 }));
                mark.ExecuteNonQuery();
            }
            transaction.Commit();
            return made;
        }
        catch (Exception e) when (PostgreSqlErrors.Translate(e) is var translated && translated != e)
        {
            throw translated;
        }
    }

    /// <summary>A broker without <c>MultiActive</c> does not keep the rows: they are dropped, and made again by the next multi-active start.</summary>
    public static void Forget(NpgsqlDataSource dataSource)
    {
        using var connection = dataSource.OpenConnection();
        using var command = new NpgsqlCommand("""
            WITH kept AS (DELETE FROM halfmsg_meta WHERE key = $1 RETURNING 1)
            DELETE FROM halfmsg_deliveries WHERE EXISTS (SELECT 1 FROM kept)
            """, connection);
        command.Parameters.Add(P(KeptMarker));
        command.ExecuteNonQuery();
    }

    private T Read<T>(Func<NpgsqlConnection, T> read) => PostgreSqlErrors.Read(dataSource, read);

    private List<T> ReadList<T>(string sql, Func<NpgsqlDataReader, T> map, params NpgsqlParameter[] parameters) => Read(c =>
    {
        using var command = Command(c, sql, parameters);
        using var reader = command.ExecuteReader();
        var list = new List<T>();
        while (reader.Read()) list.Add(map(reader));
        return list;
    });

    private async Task<List<T>> QueryAsync<T>(string sql, Func<NpgsqlDataReader, T> map, params NpgsqlParameter[] parameters)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var command = Command(connection, sql, parameters);
            await using var reader = await command.ExecuteReaderAsync();
            var list = new List<T>();
            while (await reader.ReadAsync()) list.Add(map(reader));
            return list;
        }
        catch (Exception e) when (PostgreSqlErrors.Translate(e) is var translated && translated != e)
        {
            throw translated;
        }
    }

    private async Task ExecuteAsync(string sql, params NpgsqlParameter[] parameters)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var command = Command(connection, sql, parameters);
            await command.ExecuteNonQueryAsync();
        }
        catch (Exception e) when (PostgreSqlErrors.Translate(e) is var translated && translated != e)
        {
            throw translated;
        }
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, string sql, params NpgsqlParameter[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddRange(parameters);
        return command;
    }

    private static NpgsqlParameter<T> P<T>(T value) => new() { TypedValue = value };
}
