using Npgsql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// One active broker per database: a session-level advisory lock, held on a connection of its own (not
/// pooled: closing it must end the session, and with it the lock) for as long as the broker runs. A
/// second broker started on the same database waits in <see cref="Acquire"/> — a standby, not yet
/// listening — and takes over when the active one's session ends (its process died, or PostgreSQL
/// dropped its connection). The in-memory delivery queues and the writer's cache assume one writer,
/// which is why this is a lock and not a lease shared by many.
/// The lock connection is checked every <c>LockCheckInterval</c>: once it is gone, another broker may be
/// active, so this one must stop serving (<see cref="Lost"/>, readiness fails, the host stops).
/// <para>
/// Brokers with <c>MultiActive</c> take the same key <b>shared</b> (<c>pg_advisory_lock_shared</c>): any number of them hold it
/// at once, and they keep a broker without <c>MultiActive</c> waiting as a standby (it would drop their delivery rows
/// and keep deliveries in memory they never see), while one of those holding it keeps them waiting, not ready. A
/// multi-active broker whose lock session broke (PostgreSQL restarting) takes the shared lock again and carries on; if
/// a broker without <c>MultiActive</c> got the lock meanwhile, it stops as a deposed broker does. Its writes are fenced
/// by the generation it read at start, so a takeover in that window refuses them (the taker adds 1 to it).
/// </para>
/// </summary>
internal sealed class ActiveBrokerLock : IDisposable
{
    /// <summary>The advisory lock key of the active broker ("halfmsg" + 2).</summary>
    public const long LockKey = 0x68616c666d736702;

    private readonly string _connectionString;
    private readonly TimeSpan _checkInterval;
    private readonly ILogger _logger;
    private readonly Action _lost;
    private readonly bool _shared;
    private readonly CancellationTokenSource _stop = new();
    private NpgsqlConnection? _connection;
    private Task? _watch;
    private volatile bool _isLost;
    private int _lostReported;

    /// <summary>
    /// The first statement of every write transaction: a division by zero (22012) unless the generation is still
    /// <c>$1</c>. <c>FOR SHARE</c> makes a successor's increment wait for this transaction, and makes this one,
    /// if it started after the increment, see the new value (READ COMMITTED re-reads a row it waited for).
    /// </summary>
    internal const string FenceSql = "SELECT 1 / (SELECT count(*)::int FROM (SELECT 1 FROM halfmsg_generation WHERE id = 1 AND value = $1 FOR SHARE) g)";

    /// <summary>This broker's generation; 0 until <see cref="TakeGeneration"/> (then writes are not fenced).</summary>
    public long Generation { get; private set; }

    /// <summary>The backend process id of the lock's session (tests end it with pg_terminate_backend).</summary>
    internal int BackendPid => _connection?.ProcessID ?? 0;

    /// <param name="lost">Called once, from the watch, when the lock connection is gone.</param>
    /// <param name="shared">A multi-active broker's lock: shared with the other multi-active brokers, exclusive of any other.</param>
    public ActiveBrokerLock(string connectionString, TimeSpan checkInterval, ILogger logger, Action lost, bool shared = false)
    {
        _connectionString = OwnSession.For(connectionString, "halfmsg-broker-lock");
        _checkInterval = checkInterval;
        _logger = logger;
        _lost = lost;
        _shared = shared;
    }

    /// <summary>True once the lock connection failed: this broker may no longer be the active one.</summary>
    public bool Lost => _isLost;

    /// <summary>
    /// Blocks until this broker holds the lock. Connection failures while waiting (PostgreSQL restarting)
    /// are retried; a refused login or a missing database is not, since waiting would not fix it.
    /// </summary>
    public void Acquire(CancellationToken cancellationToken = default)
    {
        var announced = false;
        var backoff = TimeSpan.FromMilliseconds(250);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var connection = new NpgsqlConnection(_connectionString);
            try
            {
                connection.Open();
                ConfigureSession(connection);
                if (TryLock(connection)) break;
                if (!announced)
                {
                    AnnounceWait(connection);
                    announced = true;
                }
                using var wait = new NpgsqlCommand(_shared ? $"SELECT pg_advisory_lock_shared({LockKey})" : $"SELECT pg_advisory_lock({LockKey})", connection) { CommandTimeout = 0 };
                using (cancellationToken.Register(() => connection.Dispose())) wait.ExecuteNonQuery();
                _connection = connection;
                break;
            }
            catch (Exception e) when (PostgreSqlErrors.IsUnavailable(e) && !cancellationToken.IsCancellationRequested)
            {
                connection.Dispose();
                _logger.LogWarning("PostgreSQL is not answering while this broker waits for the database lock ({Error}); retrying in {Delay} ms", e.Message, backoff.TotalMilliseconds);
                Thread.Sleep(backoff);
                backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 5000));
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }
        _logger.LogInformation(_shared ? "This multi-active broker holds the database's shared lock" : "This broker holds the database lock and is the active broker");
        _watch = Task.Run(Watch);
    }

    /// <summary>Says once why this broker waits, and what ends the wait: the two modes name different remedies.</summary>
    private void AnnounceWait(NpgsqlConnection connection)
    {
        if (_shared)
        {
            _logger.LogWarning(
                "waiting: a broker without MultiActive (active/standby) holds this database (advisory lock {Key}); this multi-active broker is not ready and writes nothing until that broker stops. Stop it, or run every broker on this database with the same Broker:Storage:PostgreSql:MultiActive.",
                LockKey);
        }
        else if (HeldByMultiActiveBrokers(connection))
        {
            _logger.LogWarning(
                "waiting: multi-active brokers (Broker:Storage:PostgreSql:MultiActive=true) use this database (advisory lock {Key} held shared); this broker is a standby and takes over only once the last of them stops. Set MultiActive=true on it to join them.",
                LockKey);
        }
        else
        {
            _logger.LogInformation("waiting: another broker holds the database (advisory lock {Key}); this broker is a standby and takes over when that one's session ends", LockKey);
        }
    }

    /// <summary>True when the key is held shared: a bigint advisory key is (classid = high half, objid = low half, objsubid 1) in pg_locks.</summary>
    private static bool HeldByMultiActiveBrokers(NpgsqlConnection connection)
    {
        using var command = new NpgsqlCommand($"""
            SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ShareLock'
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND classid = {LockKey >> 32} AND objid = {LockKey & 0xffffffff} AND objsubid = 1)
            """, connection);
        return command.ExecuteScalar() is true;
    }

    /// <summary>
    /// Called once the lock is held and the schema migrated: adds 1 to the database's generation and keeps the
    /// result. Waits for a deposed broker's batch in flight (it holds the row's share lock) to end.
    /// </summary>
    public void TakeGeneration(NpgsqlDataSource dataSource)
    {
        using var connection = dataSource.OpenConnection();
        // Multi-active brokers share one generation and add nothing (each would depose the others); they only make it
        // non-zero, so their writes are fenced too: a broker without MultiActive that takes over adds 1 and refuses them.
        using var command = new NpgsqlCommand(_shared
            ? "UPDATE halfmsg_generation SET value = greatest(value, 1) WHERE id = 1 RETURNING value"
            : "UPDATE halfmsg_generation SET value = value + 1 WHERE id = 1 RETURNING value", connection);
        Generation = (long)command.ExecuteScalar()!;
        _logger.LogInformation("This broker writes as generation {Generation}", Generation);
    }

    /// <summary>The fence check of <paramref name="generation"/> as a batch command (the batch's first).</summary>
    internal static NpgsqlBatchCommand FenceCommand(long generation)
    {
        var command = new NpgsqlBatchCommand(FenceSql);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = generation });
        return command;
    }

    /// <summary>True when a write was refused by the fence: a successor took a newer generation.</summary>
    internal static bool IsFenced(Exception e) => e is PostgresException { SqlState: PostgresErrorCodes.DivisionByZero };

    /// <summary>A write found a newer generation: another broker is active, so this one stops (as when the lock is lost).</summary>
    public void Deposed()
    {
        _isLost = true;
        if (Interlocked.Exchange(ref _lostReported, 1) != 0) return;
        _logger.LogCritical(
            "A write found that another broker took over the database (generation {Generation} is no longer current): this broker wrote nothing more and stops now.", Generation);
        _lost();
    }

    /// <summary>
    /// The server's keepalives end the session (and free the lock for a standby) within about 16 s of a network
    /// partition, not the server default of about 2 h; a role- or database-level lock_timeout or statement_timeout
    /// would make the standby's wait in pg_advisory_lock fail (55P03, 57014) instead of waiting.
    /// </summary>
    private static void ConfigureSession(NpgsqlConnection connection)
    {
        using var command = new NpgsqlCommand(
            "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3; SET lock_timeout = 0; SET statement_timeout = 0",
            connection);
        command.ExecuteNonQuery();
    }

    private bool TryLock(NpgsqlConnection connection)
    {
        using var command = new NpgsqlCommand(_shared ? $"SELECT pg_try_advisory_lock_shared({LockKey})" : $"SELECT pg_try_advisory_lock({LockKey})", connection);
        if (command.ExecuteScalar() is not true) return false;
        _connection = connection;
        return true;
    }

    private async Task Watch()
    {
        var connection = _connection!;
        try
        {
            // Inside the try: a bad interval must end the broker as a lost lock would, not fault this task unobserved.
            using var timer = new PeriodicTimer(_checkInterval);
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                try
                {
                    await using var command = new NpgsqlCommand("SELECT 1", connection) { CommandTimeout = Math.Max(1, (int)_checkInterval.TotalSeconds * 2) };
                    await command.ExecuteScalarAsync(_stop.Token);
                }
                catch (Exception e) when (_shared && !_stop.IsCancellationRequested)
                {
                    // A multi-active broker survives a PostgreSQL restart: it takes the shared lock again.
                    connection = await RetakeSharedAsync(connection, e);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _isLost = true;
            if (Interlocked.Exchange(ref _lostReported, 1) != 0) return;
            _logger.LogCritical(e, _shared
                ? "A broker without MultiActive took this database while this multi-active broker's lock session was gone: this one stops now. Run every broker on a database with the same Broker:Storage:PostgreSql:MultiActive."
                : "The connection holding the database lock is gone: another broker may take over, so this one stops now. Restart it: it waits for the lock and recovers from the database.");
            _lost();
        }
    }

    /// <summary>
    /// Opens a new lock session and takes the shared lock without waiting; throws when a broker without <c>MultiActive</c>
    /// holds it (this one must stop). PostgreSQL not answering is retried every check interval: writes fail meanwhile anyway.
    /// </summary>
    private async Task<NpgsqlConnection> RetakeSharedAsync(NpgsqlConnection broken, Exception cause)
    {
        _logger.LogWarning("The connection holding this multi-active broker's shared database lock is gone ({Error}); taking it again", cause.Message);
        await broken.DisposeAsync();
        while (true)
        {
            await Task.Delay(_checkInterval, _stop.Token);
            var connection = new NpgsqlConnection(_connectionString);
            try
            {
                await connection.OpenAsync(_stop.Token);
                ConfigureSession(connection);
                await using var command = new NpgsqlCommand($"SELECT pg_try_advisory_lock_shared({LockKey})", connection);
                if (await command.ExecuteScalarAsync(_stop.Token) is not true)
                {
                    throw new InvalidOperationException("a broker without MultiActive holds the database lock");
                }
                _connection = connection;
                _logger.LogInformation("This multi-active broker holds the database's shared lock again");
                return connection;
            }
            catch (Exception e) when (PostgreSqlErrors.IsUnavailable(e) && !_stop.IsCancellationRequested)
            {
                await connection.DisposeAsync();
            }
            catch
            {
                await connection.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>Ends the session, and with it the lock: a standby takes over.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            _watch?.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
        _connection?.Dispose();
        _stop.Dispose();
    }
}
