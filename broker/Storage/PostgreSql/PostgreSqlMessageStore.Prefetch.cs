using HalfMsgBroker.Engine;
using Npgsql;
using NpgsqlTypes;
using static HalfMsgBroker.Storage.PostgreSql.BatchSql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// Many active brokers: a batch's lookups in one query. The writer names what its commands will read
/// (<see cref="IBatchPrefetch"/>) and the batch's transaction reads those rows <c>FOR UPDATE</c> in one round trip,
/// sorted by id, so the locks are taken in id order: two brokers' batches over overlapping messages wait for each
/// other instead of deadlocking. The batch's lookups then answer from these rows (a named id or transactionId that
/// was not found is known absent). A row locked here cannot change before the batch ends, so the answer is as fresh
/// as the lookup's own <c>FOR UPDATE</c> read would have been.
/// </summary>
public sealed partial class PostgreSqlMessageStore : IBatchPrefetch
{
    private readonly Dictionary<Guid, byte[]> _prefetched = [];
    private readonly Dictionary<string, Guid> _prefetchedKeys = new(StringComparer.Ordinal);
    private readonly HashSet<Guid> _askedIds = [];
    private readonly HashSet<string> _askedKeys = new(StringComparer.Ordinal);

    private readonly Dictionary<(Guid, string), LeaseState> _leases = [];
    private readonly HashSet<(Guid, string)> _askedLeases = [];

    private const string MessagesSql =
        "SELECT id, unique_key, data FROM halfmsg_messages WHERE id = ANY($1) OR unique_key = ANY($2) ORDER BY id FOR UPDATE";

    // After the messages: a batch that changes a message holds its row before it touches the message's deliveries.
    // The rows are found by `= ANY` on the key's first column, and the pairs filtered as text ("id\ngroup"): a join with
    // unnest was planned as a sequential scan of every dead row (the table churns faster than autovacuum visits it),
    // or, with the group compared in the column's collation, as a walk along the claim index (89 ms a batch).
    internal const string LeasesSql = """
        SELECT d.message_id, d.consumer_group, d.nonce, d.attempts, d.visible_at
        FROM halfmsg_deliveries d
        WHERE d.message_id = ANY ($1::uuid[]) AND d.message_id::text || E'\n' || d.consumer_group = ANY ($2::text[])
        ORDER BY d.message_id, d.consumer_group
        FOR UPDATE OF d
        """;

    /// <summary>How many prefetch round trips this store made (tests check that a batch's lookups took one).</summary>
    internal long Prefetches { get; private set; }

    void IBatchPrefetch.Prefetch(BatchLookups lookups)
    {
        if (_multiActive is null || !InBatch || lookups.IsEmpty) return;
        var (ids, leases) = (lookups.Ids, lookups.Leases);
        var keys = lookups.TransactionIds.Select(MessageCodec.TransactionKey).ToArray();
        var fanOut = keys.Length > 0 || lookups.FanOutTopics.Count > 0;
        Lookup(c =>
        {
            using var batch = new NpgsqlBatch(c, _transaction);
            if (ids.Count > 0 || keys.Length > 0)
            {
                var messages = new NpgsqlBatchCommand(MessagesSql);
                messages.Parameters.Add(Array(NpgsqlDbType.Uuid, ids.ToArray()));
                messages.Parameters.Add(Array(NpgsqlDbType.Text, keys));
                batch.BatchCommands.Add(messages);
            }
            if (leases.Count > 0)
            {
                var rows = new NpgsqlBatchCommand(LeasesSql);
                rows.Parameters.Add(Array(NpgsqlDbType.Uuid, leases.Select(l => l.MessageId).Distinct().ToArray()));
                rows.Parameters.Add(Array(NpgsqlDbType.Text, leases.Select(l => $"{l.MessageId:D}\n{l.Group}").ToArray()));
                batch.BatchCommands.Add(rows);
            }
            if (fanOut) AddFanOutReads(batch, lookups.FanOutTopics, keys);
            using var reader = batch.ExecuteReader();
            if (ids.Count > 0 || keys.Length > 0)
            {
                while (reader.Read())
                {
                    var id = reader.GetGuid(0);
                    _prefetched[id] = (byte[])reader[2];
                    if (!reader.IsDBNull(1)) _prefetchedKeys[reader.GetString(1)] = id;
                }
                reader.NextResult();
            }
            while (leases.Count > 0 && reader.Read())
            {
                _leases[(reader.GetGuid(0), reader.GetString(1))] = new LeaseState(unchecked((ulong)reader.GetInt64(2)), reader.GetInt32(3), reader.GetInt64(4));
            }
            if (leases.Count > 0) reader.NextResult();
            if (fanOut) ReadFanOut(reader);
            return 0;
        });
        _askedIds.UnionWith(ids);
        _askedKeys.UnionWith(keys);
        _askedLeases.UnionWith(leases);
        Prefetches++;
    }

    LeaseState? IBatchPrefetch.PrefetchedLease(Guid messageId, string group)
    {
        if (_leases.TryGetValue((messageId, group), out var lease)) return lease;
        if (!_askedLeases.Contains((messageId, group))) throw new InvalidOperationException($"The lease of message {messageId} for {group} was not read by this batch's prefetch.");
        return null;
    }


    /// <summary>True when the batch prefetched the id: <paramref name="message"/> is the row as locked (null: there is none).</summary>
    private bool TryPrefetched(Guid id, out StoredMessage? message)
    {
        if (_prefetched.TryGetValue(id, out var data))
        {
            message = MessageBinary.Read(data);
            return true;
        }
        message = null;
        return _askedIds.Contains(id);
    }

    private bool TryPrefetchedUnique(string key, out StoredMessage? message)
    {
        if (_prefetchedKeys.TryGetValue(key, out var id)) return TryPrefetched(id, out message);
        message = null;
        return _askedKeys.Contains(key);
    }

    private void ClearPrefetched()
    {
        _prefetched.Clear();
        _prefetchedKeys.Clear();
        _askedIds.Clear();
        _askedKeys.Clear();
        _leases.Clear();
        _askedLeases.Clear();
    }
}
