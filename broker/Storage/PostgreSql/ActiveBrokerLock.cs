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
/// </summary>
internal sealed class ActiveBrokerLock : IDisposable
{
    /// <summary>The advisory lock key of the active broker ("halfmsg" + 2).</summary>
    public const long LockKey = 0x68616c666d736702;

    private readonly string _connectionString;
    private readonly TimeSpan _checkInterval;
    private readonly ILogger _logger;
    private readonly Action _lost;
    private readonly CancellationTokenSource _stop = new();
    private NpgsqlConnection? _connection;
    private Task? _watch;
    private volatile bool _isLost;

    /// <param name="lost">Called once, from the watch, when the lock connection is gone.</param>
    public ActiveBrokerLock(string connectionString, TimeSpan checkInterval, ILogger logger, Action lost)
    {
        // A session of its own: a pooled connection returned to the pool would keep the session, and the lock, alive.
        // TCP keepalives notice a peer that vanished while the standby waits.
        _connectionString = new NpgsqlConnectionStringBuilder(connectionString)
        {
            Pooling = false,
            TcpKeepAlive = true,
            TcpKeepAliveTime = 10,
            TcpKeepAliveInterval = 2,
            ApplicationName = "halfmsg-broker-lock",
        }.ConnectionString;
        _checkInterval = checkInterval;
        _logger = logger;
        _lost = lost;
    }

    /// <summary>True once the lock connection failed: this broker may no longer be the active one.</summary>
    public bool Lost => _isLost;

    public bool Held => _watch is not null && !_isLost;

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
                if (TryLock(connection)) break;
                if (!announced)
                {
                    _logger.LogInformation("waiting: another broker holds the database (advisory lock {Key}); this broker is a standby and takes over when that one's session ends", LockKey);
                    announced = true;
                }
                using var wait = new NpgsqlCommand($"SELECT pg_advisory_lock({LockKey})", connection) { CommandTimeout = 0 };
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
        _logger.LogInformation("This broker holds the database lock and is the active broker");
        _watch = Task.Run(Watch);
    }

    private bool TryLock(NpgsqlConnection connection)
    {
        using var command = new NpgsqlCommand($"SELECT pg_try_advisory_lock({LockKey})", connection);
        if (command.ExecuteScalar() is not true) return false;
        _connection = connection;
        return true;
    }

    private async Task Watch()
    {
        var connection = _connection!;
        using var timer = new PeriodicTimer(_checkInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                await using var command = new NpgsqlCommand("SELECT 1", connection) { CommandTimeout = Math.Max(1, (int)_checkInterval.TotalSeconds * 2) };
                await command.ExecuteScalarAsync(_stop.Token);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _isLost = true;
            _logger.LogCritical(e,
                "The connection holding the database lock is gone: another broker may take over, so this one stops now. Restart it: it waits for the lock and recovers from the database.");
            _lost();
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
