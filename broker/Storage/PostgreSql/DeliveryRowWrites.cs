using HalfMsgBroker.Lifecycle;
using Npgsql;
using NpgsqlTypes;
using static HalfMsgBroker.Storage.PostgreSql.BatchSql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>One live delivery as a <c>halfmsg_deliveries</c> row, derived from its message as the batch leaves it.</summary>
internal readonly record struct DeliveryRow(
    Guid MessageId, string Group, string Topic, long VisibleAt, int Attempts, string? OrderingKey, long CommitSeq, long StoredKey);

/// <summary>
/// With <c>MultiActive</c>, live deliveries are rows every broker claims from (<c>halfmsg_deliveries</c>), kept in step
/// with the messages in the same transaction: whatever a batch writes of a message, its deliveries' rows follow.
/// A live delivery (committed, not acked, dead-lettered or discarded) has a row; any other has none. A row is reset
/// (due again at its stored time, lease gone) only when the stored delivery changed (<c>stored_key</c>: its state,
/// attempts and next attempt), so a batch that rewrites a message for another group's sake leaves a lease alone.
/// Rows inserted or reset notify <c>halfmsg_ready</c> (at commit, only if it commits), one notification per
/// subscription: <c>group \n topic \n earliest due \n earliest due after now (0: none)</c>.
/// </summary>
internal sealed class DeliveryRowWrites
{
    public const string ReadyChannel = "halfmsg_ready";

    /// <summary>
    /// Deletes the rows of groups a message no longer has live. Written as <c>= ANY</c> on the key, not a join with unnest:
    /// the table churns faster than autovacuum visits it, and a join was planned as a hash over a sequential scan of every
    /// dead row (1.3 ms a batch at 1,000 msg/s, the costliest statement of a multi-active broker), where the primary key
    /// finds a batch's rows in 0.1 ms.
    /// </summary>
    internal const string NotLiveSql = """
        DELETE FROM halfmsg_deliveries d
        WHERE d.message_id = ANY ($1::uuid[])
            AND NOT (d.consumer_group = ANY (string_to_array(($2::text[])[array_position($1::uuid[], d.message_id)], E'\n')))
        """;

    private readonly Dictionary<Guid, (DeliveryRow[] Live, string Groups)> _written = [];
    private readonly HashSet<Guid> _deleted = [];

    public bool IsEmpty => _written.Count == 0 && _deleted.Count == 0;

    public void Clear()
    {
        _written.Clear();
        _deleted.Clear();
    }

    public void Written(StoredMessage message)
    {
        _deleted.Remove(message.Id);
        _written[message.Id] = (LiveRows(message), string.Join('\n', LiveGroups(message)));
    }

    public void Deleted(Guid id)
    {
        _written.Remove(id);
        _deleted.Add(id);
    }

    public static DeliveryRow[] LiveRows(StoredMessage m)
    {
        if (m.State != MessageState.Committed) return [];
        var rows = new List<DeliveryRow>(m.Deliveries.Count);
        foreach (var d in m.Deliveries)
        {
            if (d.State.IsTerminal()) continue;
            rows.Add(new DeliveryRow(m.Id, d.Group, m.Topic, Math.Max(d.NextAttemptAt, m.DeliverAt), d.Attempts,
                m.OrderingKey, m.OrderingKey is null ? 0 : m.CommitSeq, StoredKeyOf(d)));
        }
        return [.. rows];
    }

    private static IEnumerable<string> LiveGroups(StoredMessage m) =>
        m.State != MessageState.Committed ? [] : m.Deliveries.Where(d => !d.State.IsTerminal()).Select(d => d.Group);

    /// <summary>What of a stored delivery, when it changes, resets its row (the same on every broker: no randomized hash).</summary>
    private static long StoredKeyOf(StoredDelivery d) => unchecked((d.NextAttemptAt * 1_000_003L) + (d.Attempts * 64L) + (long)d.State);

    public void AddTo(NpgsqlBatch batch, long now)
    {
        if (_deleted.Count > 0)
        {
            Add(batch, "DELETE FROM halfmsg_deliveries WHERE message_id = ANY($1)", Array(NpgsqlDbType.Uuid, _deleted));
        }
        if (_written.Count == 0) return;

        // Rows of groups the message no longer has live (acked, dead-lettered, discarded, dropped with their subscription).
        Add(batch, NotLiveSql,
            Array(NpgsqlDbType.Uuid, _written.Keys), Array(NpgsqlDbType.Text, _written.Values.Select(w => w.Groups)));

        var rows = _written.Values.SelectMany(w => w.Live).ToList();
        if (rows.Count > 0) batch.BatchCommands.Add(Upsert(rows, now));
    }

    /// <summary>Rows for the live deliveries of an open message read at start (the backfill of <see cref="DeliveryRows.Backfill"/>).</summary>
    public static IEnumerable<DeliveryRow> LiveRows(OpenMessage m) => m.Deliveries.Where(d => !d.State.IsTerminal()).Select(d =>
        new DeliveryRow(m.Id, d.Group, m.Topic, Math.Max(d.NextAttemptAt, m.DeliverAt), d.Attempts, m.OrderingKey,
            m.OrderingKey is null ? 0 : m.CommitSeq, StoredKeyOf(d)));

    /// <summary>Inserts rows, or resets those whose stored delivery changed, and notifies each subscription that got one.</summary>
    public static NpgsqlBatchCommand Upsert(IReadOnlyList<DeliveryRow> rows, long now)
    {
        var command = new NpgsqlBatchCommand("""
            WITH up AS (
                INSERT INTO halfmsg_deliveries (message_id, consumer_group, topic, visible_at, nonce, attempts, ordering_key, commit_seq, stored_key)
                SELECT u.id, u.g, u.t, u.v, 0, u.a, u.k, u.s, u.sk
                FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[], $7::bigint[], $8::bigint[]) AS u(id, g, t, v, a, k, s, sk)
                ON CONFLICT (message_id, consumer_group) DO UPDATE
                    SET visible_at = EXCLUDED.visible_at, nonce = 0, attempts = EXCLUDED.attempts, stored_key = EXCLUDED.stored_key
                    WHERE halfmsg_deliveries.stored_key <> EXCLUDED.stored_key
                        -- A consumer's lease still held is left alone (retry-now, a late time-out): its holder settles it.
                        -- A settlement's (0) or a time-out's being stored (-1) is the writer's to reset.
                        AND (halfmsg_deliveries.nonce <= 0 OR halfmsg_deliveries.visible_at <= $9)
                RETURNING consumer_group, topic, visible_at)
            SELECT pg_notify('halfmsg_ready', consumer_group || E'\n' || topic || E'\n' || min(visible_at)
                || E'\n' || coalesce(min(visible_at) FILTER (WHERE visible_at > $9), 0))
            FROM up GROUP BY consumer_group, topic
            """);
        command.Parameters.AddRange(new NpgsqlParameter[] {
            Array(NpgsqlDbType.Uuid, rows.Select(r => r.MessageId)),
            Array(NpgsqlDbType.Text, rows.Select(r => r.Group)),
            Array(NpgsqlDbType.Text, rows.Select(r => r.Topic)),
            Array(NpgsqlDbType.Bigint, rows.Select(r => r.VisibleAt)),
            Array(NpgsqlDbType.Integer, rows.Select(r => r.Attempts)),
            Array(NpgsqlDbType.Text, rows.Select(r => r.OrderingKey)),
            Array(NpgsqlDbType.Bigint, rows.Select(r => r.CommitSeq)),
            Array(NpgsqlDbType.Bigint, rows.Select(r => r.StoredKey)),
            new NpgsqlParameter<long> { TypedValue = now } });
        return command;
    }
}
