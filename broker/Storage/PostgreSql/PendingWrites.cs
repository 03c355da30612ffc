using LiteDB;
using Npgsql;
using NpgsqlTypes;
using static HalfMsgBroker.Storage.PostgreSql.BatchSql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// The writes of the batch in progress, kept in memory (writer thread only) and coalesced per row, then
/// sent as one <see cref="NpgsqlBatch"/>: a fixed handful of statements over arrays (<c>unnest</c>),
/// whatever the batch's size, in one round trip and one implicit transaction. Lookups inside the batch
/// read here first, so they see the batch's own earlier writes. Deletes go first, so a unique key
/// one frees is free for an insert (as in LiteDB's apply).
/// </summary>
internal sealed class PendingWrites
{
    private readonly Dictionary<Guid, PendingMessage> _messages = [];
    // A producer-chosen key's holder as the batch leaves it; null: freed by a delete in this batch.
    private readonly Dictionary<string, Guid?> _uniqueKeys = new(StringComparer.Ordinal);
    private readonly Dictionary<DeadLetterRef, long?> _deadLetters = [];
    private readonly Dictionary<string, BsonDocument?> _subscriptions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, BsonDocument> _producerGroups = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _topicDeltas = new(StringComparer.Ordinal);

    /// <summary>The rows of live deliveries, kept in step with the messages (only with <c>MultiActive</c>).</summary>
    private readonly DeliveryRowWrites? _deliveries;

    public PendingWrites(bool deliveryRows = false) => _deliveries = deliveryRows ? new DeliveryRowWrites() : null;

    private sealed class PendingMessage
    {
        public MessageRow? Row; // null: deleted
        public bool Inserted; // not in the database before this batch
        public string[] Keys = [];
    }

    public bool IsEmpty => _messages.Count == 0 && _deadLetters.Count == 0 && _subscriptions.Count == 0
        && _producerGroups.Count == 0 && _topicDeltas.Count == 0 && _deliveries?.IsEmpty != false;

    public void Clear()
    {
        _messages.Clear();
        _uniqueKeys.Clear();
        _deadLetters.Clear();
        _subscriptions.Clear();
        _producerGroups.Clear();
        _topicDeltas.Clear();
        _deliveries?.Clear();
    }

    public void Insert(StoredMessage message)
    {
        var row = MessageRow.Of(message);
        _deliveries?.Written(message);
        if (row.UniqueKey is { } key)
        {
            // A key another message of this batch holds: refused here, as the database would refuse it at the end.
            if (_uniqueKeys.TryGetValue(key, out var holder) && holder is { } id && id != message.Id) throw new DuplicateKeyException(key);
            _uniqueKeys[key] = message.Id;
        }
        if (_messages.TryGetValue(message.Id, out var pending) && !pending.Inserted)
        {
            pending.Row = row; // deleted and stored again in one batch: the row stays, changed
            return;
        }
        _messages[message.Id] = new PendingMessage { Row = row, Inserted = true, Keys = message.Keys };
    }

    public void Update(StoredMessage message)
    {
        var row = MessageRow.Of(message);
        _deliveries?.Written(message);
        if (_messages.TryGetValue(message.Id, out var pending)) pending.Row = row;
        else _messages[message.Id] = new PendingMessage { Row = row, Keys = message.Keys };
    }

    public void Delete(StoredMessage message)
    {
        if (MessageCodec.ProducerChosenKeyOf(message) is { } key) _uniqueKeys[key] = null;
        _deliveries?.Deleted(message.Id);
        if (_messages.TryGetValue(message.Id, out var pending) && pending.Inserted)
        {
            _messages.Remove(message.Id); // inserted and deleted in one batch: the database never sees it
            return;
        }
        _messages[message.Id] = new PendingMessage { Row = null, Keys = message.Keys };
    }

    /// <summary>True when the batch has written or deleted the message; <paramref name="message"/> is a copy of its state then.</summary>
    public bool TryFind(Guid id, out StoredMessage? message)
    {
        if (_messages.TryGetValue(id, out var pending))
        {
            message = pending.Row?.Decode();
            return true;
        }
        message = null;
        return false;
    }

    /// <summary>True when the batch decided who holds the key (null: nobody any more).</summary>
    public bool TryFindUnique(string key, out StoredMessage? message)
    {
        if (_uniqueKeys.TryGetValue(key, out var holder))
        {
            message = holder is { } id && TryFind(id, out var found) ? found : null;
            return true;
        }
        message = null;
        return false;
    }

    public void PutDeadLetter(DeadLetterRef deadLetter, long at) => _deadLetters[deadLetter] = at;

    public void DeleteDeadLetter(DeadLetterRef deadLetter) => _deadLetters[deadLetter] = null;

    public void SaveSubscription(string id, BsonDocument doc) => _subscriptions[id] = doc;

    public void DeleteSubscription(string id) => _subscriptions[id] = null;

    /// <summary>True when the batch saved or deleted the subscription (<paramref name="doc"/> null: deleted).</summary>
    public bool TryGetSubscription(string id, out BsonDocument? doc) => _subscriptions.TryGetValue(id, out doc);

    public void SaveProducerGroup(string name, BsonDocument doc) => _producerGroups[name] = doc;

    public bool TryGetProducerGroup(string name, out BsonDocument? doc) => _producerGroups.TryGetValue(name, out doc);

    public void AddTopicDeltas(IReadOnlyDictionary<string, long> deltas)
    {
        foreach (var (topic, delta) in deltas)
        {
            if (delta != 0) _topicDeltas[topic] = _topicDeltas.GetValueOrDefault(topic) + delta;
        }
    }

    /// <summary>The batch's writes as statements; empty kinds send nothing.</summary>
    public NpgsqlBatch Build(NpgsqlConnection connection)
    {
        var batch = new NpgsqlBatch(connection);
        AddMessageDeletes(batch);
        AddDeadLetterDeletes(batch);
        AddMessageUpdates(batch);
        AddMessageInserts(batch);
        _deliveries?.AddTo(batch, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        AddDeadLetterPuts(batch);
        AddDocuments(batch);
        AddTopicCounts(batch);
        return batch;
    }

    private void AddMessageDeletes(NpgsqlBatch batch)
    {
        var ids = new List<Guid>();
        var keys = new List<string>();
        var keyIds = new List<Guid>();
        foreach (var (id, pending) in _messages)
        {
            if (pending.Row is not null) continue;
            ids.Add(id);
            foreach (var key in pending.Keys)
            {
                keys.Add(key);
                keyIds.Add(id);
            }
        }
        if (ids.Count == 0) return;
        Add(batch, "DELETE FROM halfmsg_messages WHERE id = ANY($1)", Array(NpgsqlDbType.Uuid, ids));
        if (keys.Count > 0)
        {
            Add(batch, "DELETE FROM halfmsg_message_keys k USING unnest($1::text[], $2::uuid[]) AS u(key, id) WHERE k.key = u.key AND k.message_id = u.id",
                Array(NpgsqlDbType.Text, keys), Array(NpgsqlDbType.Uuid, keyIds));
        }
    }

    /// <summary>
    /// PostgreSQL refuses a value over 1 GB, an array parameter included: a batch of large bodies (512 × 4 MiB)
    /// is split into statements of at most this many bytes of data each.
    /// </summary>
    internal const int MaxStatementBytes = 64 * 1024 * 1024;

    private static IEnumerable<List<MessageRow>> Chunks(IEnumerable<MessageRow> rows)
    {
        var chunk = new List<MessageRow>();
        long bytes = 0;
        foreach (var row in rows)
        {
            if (chunk.Count > 0 && bytes + row.Data.Length > MaxStatementBytes)
            {
                yield return chunk;
                chunk = [];
                bytes = 0;
            }
            chunk.Add(row);
            bytes += row.Data.Length;
        }
        if (chunk.Count > 0) yield return chunk;
    }

    private void AddMessageUpdates(NpgsqlBatch batch)
    {
        foreach (var rows in Chunks(_messages.Values.Where(p => p.Row is not null && !p.Inserted).Select(p => p.Row!))) AddUpdates(batch, rows);
    }

    private static void AddUpdates(NpgsqlBatch batch, List<MessageRow> rows)
    {
        Add(batch, """
            UPDATE halfmsg_messages m SET state = u.state, check_at = u.check_at, open = u.open, purge_at = u.purge_at,
                committed_at = u.committed_at, data = u.data
            FROM unnest($1::uuid[], $2::smallint[], $3::bigint[], $4::boolean[], $5::bigint[], $6::bigint[], $7::bytea[])
                AS u(id, state, check_at, open, purge_at, committed_at, data)
            WHERE m.id = u.id
            """,
            Array(NpgsqlDbType.Uuid, rows.Select(r => r.Id)),
            Array(NpgsqlDbType.Smallint, rows.Select(r => r.State)),
            Array(NpgsqlDbType.Bigint, rows.Select(r => r.CheckAt)),
            Array(NpgsqlDbType.Boolean, rows.Select(r => r.Open)),
            Array(NpgsqlDbType.Bigint, rows.Select(r => r.PurgeAt)),
            Array(NpgsqlDbType.Bigint, rows.Select(r => r.CommittedAt)),
            Array(NpgsqlDbType.Bytea, rows.Select(r => r.Data)));
    }

    private void AddMessageInserts(NpgsqlBatch batch)
    {
        foreach (var rows in Chunks(_messages.Values.Where(p => p.Row is not null && p.Inserted).Select(p => p.Row!))) AddInserts(batch, rows);
    }

    private static void AddInserts(NpgsqlBatch batch, List<MessageRow> rows)
    {
        Add(batch, """
            INSERT INTO halfmsg_messages (id, topic, state, transaction_id, producer_group, unique_key, check_at, open, purge_at, committed_at, data)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::smallint[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::boolean[],
                $9::bigint[], $10::bigint[], $11::bytea[])
            """,
            Array(NpgsqlDbType.Uuid, rows.Select(r => r.Id)),
            Array(NpgsqlDbType.Text, rows.Select(r => r.Topic)),
            Array(NpgsqlDbType.Smallint, rows.Select(r => r.State)),
            Array(NpgsqlDbType.Text, rows.Select(r => r.TransactionId)),
            Array(NpgsqlDbType.Text, rows.Select(r => r.ProducerGroup)),
            Array(NpgsqlDbType.Text, rows.Select(r => r.UniqueKey)),
            Array(NpgsqlDbType.Bigint, rows.Select(r => r.CheckAt)),
            Array(NpgsqlDbType.Boolean, rows.Select(r => r.Open)),
            Array(NpgsqlDbType.Bigint, rows.Select(r => r.PurgeAt)),
            Array(NpgsqlDbType.Bigint, rows.Select(r => r.CommittedAt)),
            Array(NpgsqlDbType.Bytea, rows.Select(r => r.Data)));

        var keys = new List<string>();
        var keyIds = new List<Guid>();
        foreach (var row in rows)
        {
            foreach (var key in row.Keys)
            {
                keys.Add(key);
                keyIds.Add(row.Id);
            }
        }
        if (keys.Count == 0) return;
        // A message may carry one key twice; the key index holds it once.
        Add(batch, "INSERT INTO halfmsg_message_keys (key, message_id) SELECT * FROM unnest($1::text[], $2::uuid[]) ON CONFLICT DO NOTHING",
            Array(NpgsqlDbType.Text, keys), Array(NpgsqlDbType.Uuid, keyIds));
    }

    private void AddDeadLetterDeletes(NpgsqlBatch batch)
    {
        var gone = _deadLetters.Where(d => d.Value is null).Select(d => d.Key).ToList();
        if (gone.Count == 0) return;
        Add(batch, """
            DELETE FROM halfmsg_dead_letters d USING unnest($1::text[], $2::text[], $3::uuid[]) AS u(consumer_group, topic, message_id)
            WHERE d.consumer_group = u.consumer_group AND d.topic = u.topic AND d.message_id = u.message_id
            """,
            Array(NpgsqlDbType.Text, gone.Select(d => d.Group)),
            Array(NpgsqlDbType.Text, gone.Select(d => d.Topic)),
            Array(NpgsqlDbType.Uuid, gone.Select(d => d.MessageId)));
    }

    private void AddDeadLetterPuts(NpgsqlBatch batch)
    {
        var put = _deadLetters.Where(d => d.Value is not null).ToList();
        if (put.Count == 0) return;
        Add(batch, """
            INSERT INTO halfmsg_dead_letters (consumer_group, topic, message_id, dead_lettered_at)
            SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::bigint[])
            ON CONFLICT (consumer_group, topic, message_id) DO UPDATE SET dead_lettered_at = EXCLUDED.dead_lettered_at
            """,
            Array(NpgsqlDbType.Text, put.Select(d => d.Key.Group)),
            Array(NpgsqlDbType.Text, put.Select(d => d.Key.Topic)),
            Array(NpgsqlDbType.Uuid, put.Select(d => d.Key.MessageId)),
            Array(NpgsqlDbType.Bigint, put.Select(d => d.Value!.Value)));
    }

    /// <summary>Subscriptions and producer groups change rarely: a statement each.</summary>
    private void AddDocuments(NpgsqlBatch batch)
    {
        foreach (var (id, doc) in _subscriptions)
        {
            if (doc is null) Add(batch, "DELETE FROM halfmsg_subscriptions WHERE id = $1", Value(id));
            else Add(batch, "INSERT INTO halfmsg_subscriptions (id, doc) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc", Value(id), Value(BsonSerializer.Serialize(doc)));
        }
        foreach (var (name, doc) in _producerGroups)
        {
            Add(batch, "INSERT INTO halfmsg_producer_groups (name, doc) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET doc = EXCLUDED.doc",
                Value(name), Value(BsonSerializer.Serialize(doc)));
        }
    }

    /// <summary>Exact counts, changed in the batch's own transaction (LiteDB's are kept in memory and stored now and then).</summary>
    private void AddTopicCounts(NpgsqlBatch batch)
    {
        if (_topicDeltas.Count == 0) return;
        Add(batch, """
            INSERT INTO halfmsg_topic_counts (topic, n) SELECT * FROM unnest($1::text[], $2::bigint[])
            ON CONFLICT (topic) DO UPDATE SET n = greatest(0, halfmsg_topic_counts.n + EXCLUDED.n)
            """,
            Array(NpgsqlDbType.Text, _topicDeltas.Keys), Array(NpgsqlDbType.Bigint, _topicDeltas.Values));
    }
}
