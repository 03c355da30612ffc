using System.Security.Cryptography;
using LiteDB;
using Npgsql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// Every piece of broker state in PostgreSQL. A group commit is one PostgreSQL transaction: the
/// batch's writes are kept in memory while the writer runs it (<see cref="PendingWrites"/>) and sent
/// at the end as one <see cref="NpgsqlBatch"/> (one round trip, committed with the server's
/// <c>synchronous_commit</c>, on by default), so a 2xx means the change is in PostgreSQL. The writer
/// has a connection of its own; reads take pooled connections. Index queries need no catching up
/// (there is no applier): PostgreSQL holds every committed batch. Listings and counts are in
/// <c>PostgreSqlMessageStore.Listings.cs</c>.
/// </summary>
public sealed partial class PostgreSqlMessageStore : IMessageStore
{
    private const string ReceiptKeyName = "receiptKey";

    private readonly NpgsqlDataSource _dataSource;
    private readonly ActiveBrokerLock? _activeLock;
    private readonly Action<Exception>? _writeFailed;
    private Exception? _writeFailure;
    private readonly PendingWrites _pending;
    private readonly Lock _writeLock = new();
    private NpgsqlConnection? _writer;
    private int _batchThread;
    private bool _disposed;

    // Many active brokers (MultiActive): see MultiActiveBatch.cs.
    private readonly MultiActiveOptions? _multiActive;
    private NpgsqlTransaction? _transaction;

    /// <param name="dataSource">Owned by the caller (the host's singleton), so it is not disposed here.</param>
    /// <param name="activeLock">Held by this broker; once it is lost no batch is written (another broker may be active), and its generation fences every batch.</param>
    /// <param name="writeFailed">Called once when a batch's outcome is unknown (see <see cref="WriteFailure"/>): the host stops. Not with <paramref name="multiActive"/>.</param>
    /// <param name="multiActive">Set when every broker on the database is active: batches lock what they read and announce what they change.</param>
    /// <param name="deliveryRows">With <c>MultiActive</c>: every batch keeps <c>halfmsg_deliveries</c> in step with its messages (<see cref="DeliveryRowWrites"/>).</param>
    internal PostgreSqlMessageStore(NpgsqlDataSource dataSource, ActiveBrokerLock? activeLock = null, Action<Exception>? writeFailed = null, MultiActiveOptions? multiActive = null, bool deliveryRows = false)
    {
        _pending = new PendingWrites(deliveryRows);
        _dataSource = dataSource;
        _activeLock = activeLock;
        _writeFailed = writeFailed;
        _multiActive = multiActive;
    }

    /// <summary>
    /// Set when the connection broke or timed out while a batch was being executed or committed: PostgreSQL may
    /// have committed it or not. Memory (deliveries, the writer's cache) may then disagree with the database, so
    /// the store takes no more writes and the broker stops; the restart's recovery rebuilds memory from the database.
    /// </summary>
    public Exception? WriteFailure => Volatile.Read(ref _writeFailure);

    private bool InBatch => _batchThread == Environment.CurrentManagedThreadId;

    public void RunBatch(Action work)
    {
        // Uncontended (one writer); it lets Dispose wait out a batch in flight.
        lock (_writeLock)
        {
            // A lost lock first: it is the reason the broker is closing, and what the caller should be told.
            if (_activeLock is { Lost: true }) throw LockLost();
            if (WriteFailure is not null) throw OutcomeUnknown();
            ObjectDisposedException.ThrowIf(_disposed, this);
            _pending.Clear();
            ClearAnnouncements();
            ClearPrefetched();
            _batchThread = Environment.CurrentManagedThreadId;
            try
            {
                try
                {
                    work();
                }
                finally
                {
                    _batchThread = 0;
                }
                if (_pending.IsEmpty)
                {
                    // Read only; a multi-active batch that read rows still holds their locks until it ends.
                    CommitReadOnly();
                    return;
                }
                if (_activeLock is { Lost: true }) throw LockLost();
                WriteBatch();
            }
            finally
            {
                _pending.Clear();
                ClearPrefetched();
                EndTransaction();
            }
        }
    }

    private void WriteBatch()
    {
        try
        {
            // Opening may fail: nothing was sent then, and the batch is simply unavailable.
            var connection = WriterConnection();
            using var batch = _pending.Build(connection);
            if (_activeLock is { Generation: > 0 } fenced) batch.BatchCommands.Insert(0, ActiveBrokerLock.FenceCommand(fenced.Generation));
            AddAnnouncements(batch);
            // A batch whose lookups opened a transaction ends it in the same round trip: the COMMIT is the batch's last
            // statement (PostgreSQL skips it when one before it fails, and the transaction is rolled back below). Without
            // one, an NpgsqlBatch runs in one implicit transaction, all or nothing, committed as it executes. Either way
            // the commit may have happened once the batch is sent.
            if (_transaction is not null) batch.BatchCommands.Add(new NpgsqlBatchCommand("COMMIT"));
            try
            {
                batch.ExecuteNonQuery();
                // Npgsql saw the COMMIT end the transaction (the server's ready-for-query status): the object is spent.
                _transaction?.Dispose();
                _transaction = null;
            }
            catch (Exception e) when (ActiveBrokerLock.IsFenced(e))
            {
                _activeLock!.Deposed();
                throw LockLost();
            }
            catch (Exception e) when (e is not PostgresException && PostgreSqlErrors.IsUnavailable(e))
            {
                // No answer: PostgreSQL may have committed the batch. A PostgresException is PostgreSQL's own
                // answer, given before the commit (the transaction was rolled back).
                _transaction = null;
                _writer?.Dispose();
                _writer = null;
                if (_multiActive is not null) throw CarryOnAfterUnknownOutcome(e);
                if (Interlocked.CompareExchange(ref _writeFailure, e, null) is null) _writeFailed?.Invoke(e);
                throw OutcomeUnknown();
            }
        }
        catch (Exception e) when (e is not (StoreUnavailableException or StoreOutcomeUnknownException))
        {
            throw WriterFailed(e);
        }
    }

    private static StoreOutcomeUnknownException OutcomeUnknown() => new(
        "The connection to PostgreSQL broke while a batch of changes was being committed, so whether this request's change was stored is unknown. " +
        "The broker takes no more writes and stops; once it (or another broker) is ready again, read the state back before repeating the request, " +
        "or repeat it with the same transactionId or Idempotency-Key.");

    private static StoreUnavailableException LockLost() => new(
        "This broker lost its database lock and is stopping; another broker may be active. Retry: a load balancer sends the retry to the active one.");

    /// <summary>
    /// The writer's connection, opened again after a failure. Its own (not one per batch from the pool) so a
    /// batch does not pay for the pool's reset.
    /// </summary>
    private NpgsqlConnection WriterConnection()
    {
        if (_writer is { State: System.Data.ConnectionState.Open }) return _writer;
        _writer?.Dispose();
        _writer = null;
        _writer = _dataSource.OpenConnection();
        return _writer;
    }

    /// <summary>The backend process id of the writer's connection (0 when none is open): tests check it is kept across a refused batch.</summary>
    internal int WriterProcessId => _writer is { State: System.Data.ConnectionState.Open } writer ? writer.ProcessID : 0;

    /// <summary>Anything but a refused key may have left the connection broken or mid-protocol: the next batch opens a fresh one.</summary>
    private Exception WriterFailed(Exception e)
    {
        var translated = PostgreSqlErrors.Translate(e);
        if (translated is not (DuplicateKeyException or StoreConflictException))
        {
            _transaction = null;
            _writer?.Dispose();
            _writer = null;
        }
        return translated;
    }

    /// <summary>A lookup: inside a batch on the writer's connection (after its pending writes), elsewhere on a pooled one.</summary>
    private T Lookup<T>(Func<NpgsqlConnection, T> read)
    {
        if (!InBatch) return PostgreSqlErrors.Read(_dataSource, read);
        try
        {
            var connection = WriterConnection();
            BeginTransactionForLookups(connection);
            return read(connection);
        }
        catch (Exception e)
        {
            throw WriterFailed(e);
        }
    }

    public StoredMessage? Find(Guid id)
    {
        if (InBatch && (_pending.TryFind(id, out var found) || TryPrefetched(id, out found))) return found;
        return Lookup(c => ReadMessage(c, "SELECT data FROM halfmsg_messages WHERE id = $1" + LockRead, id));
    }

    public StoredMessage? FindByTransactionId(string transactionId) => FindUnique(MessageCodec.TransactionKey(transactionId));

    public StoredMessage? FindByIdempotencyKey(string topic, string key) => FindUnique(MessageCodec.IdempotencyKey(topic, key));

    private StoredMessage? FindUnique(string key)
    {
        if (InBatch && (_pending.TryFindUnique(key, out var found) || TryPrefetchedUnique(key, out found))) return found;
        return Lookup(c => ReadMessage(c, "SELECT data FROM halfmsg_messages WHERE unique_key = $1" + LockRead, key));
    }

    private static StoredMessage? ReadMessage<T>(NpgsqlConnection connection, string sql, T parameter)
    {
        using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new NpgsqlParameter<T> { TypedValue = parameter });
        return command.ExecuteScalar() is byte[] data ? MessageBinary.Read(data) : null;
    }

    public void Insert(StoredMessage message)
    {
        _pending.Insert(message);
        NoteCheckDue(message);
    }

    public void Update(StoredMessage message)
    {
        _pending.Update(message);
        NoteCheckDue(message);
    }

    public void Delete(StoredMessage message) => _pending.Delete(message);

    public void AddToTopicCounts(IReadOnlyDictionary<string, long> deltas) => _pending.AddTopicDeltas(deltas);

    public void SaveProducerGroup(ProducerGroup group)
    {
        _pending.SaveProducerGroup(group.Name, LiteDbMessageStore.ToBson(group));
        NoteConfigChange(ConfigChange.ProducerGroup(group.Name));
    }

    public void SaveSubscription(Subscription subscription)
    {
        LockSubscriptionsOf(subscription.Topic);
        _pending.SaveSubscription(LiteDbMessageStore.SubscriptionId(subscription.Group, subscription.Topic), LiteDbMessageStore.ToBson(subscription));
        NoteConfigChange(ConfigChange.Subscription(subscription.Group, subscription.Topic));
    }

    public void DeleteSubscription(string group, string topic)
    {
        LockSubscriptionsOf(topic);
        _pending.DeleteSubscription(LiteDbMessageStore.SubscriptionId(group, topic));
        NoteConfigChange(ConfigChange.Subscription(group, topic));
    }

    public void PutDeadLetter(DeadLetterRef deadLetter, long deadLetteredAt) => _pending.PutDeadLetter(deadLetter, deadLetteredAt);

    public void DeleteDeadLetter(DeadLetterRef deadLetter) => _pending.DeleteDeadLetter(deadLetter);

    public ProducerGroup? GetProducerGroup(string name)
    {
        if (InBatch && _pending.TryGetProducerGroup(name, out var doc)) return LiteDbMessageStore.ProducerGroupFrom(doc!);
        return Lookup(c =>
        {
            if (_multiActive is not null && InBatch) LockProducerGroup(c, name);
            using var command = new NpgsqlCommand("SELECT doc FROM halfmsg_producer_groups WHERE name = $1" + LockRead, c);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
            return command.ExecuteScalar() is byte[] bson ? LiteDbMessageStore.ProducerGroupFrom(BsonSerializer.Deserialize(bson)) : null;
        });
    }

    /// <summary>Made once per database: every broker on it signs and recognises the same receipt handles.</summary>
    public byte[] ReceiptKey() => PostgreSqlErrors.Read(_dataSource, c =>
    {
        using (var insert = new NpgsqlCommand("INSERT INTO halfmsg_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", c))
        {
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = ReceiptKeyName });
            insert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = RandomNumberGenerator.GetBytes(32) });
            insert.ExecuteNonQuery();
        }
        using var read = new NpgsqlCommand("SELECT value FROM halfmsg_meta WHERE key = $1", c);
        read.Parameters.Add(new NpgsqlParameter<string> { TypedValue = ReceiptKeyName });
        return (byte[])read.ExecuteScalar()!;
    });

    /// <summary>Whether PostgreSQL answers within <paramref name="timeout"/> (readiness).</summary>
    public async Task<string?> ProblemAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await using var connection = await _dataSource.OpenConnectionAsync(deadline.Token);
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync(deadline.Token);
            return null;
        }
        catch (Exception e) when (e is OperationCanceledException || PostgreSqlErrors.IsUnavailable(e))
        {
            return e is OperationCanceledException
                ? $"PostgreSQL did not answer within {timeout.TotalSeconds:F0} s"
                : $"PostgreSQL is not answering: {e.Message}";
        }
    }

    public void Dispose()
    {
        lock (_writeLock)
        {
            if (_disposed) return;
            _disposed = true;
            _transaction = null;
            _writer?.Dispose();
            _writer = null;
        }
    }
}
