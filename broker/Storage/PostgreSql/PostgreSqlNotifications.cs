using System.Collections.Concurrent;
using Npgsql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// How brokers sharing one database (<c>MultiActive</c>) hear each other: one connection per broker, outside the pool
/// (a pooled connection would be reset and lose its LISTENs), listening on every channel a component asked for.
/// A <c>pg_notify</c> sent inside a write's own transaction (<see cref="NotifyCommand"/>) is delivered at commit,
/// and only if it commits, so a notification never runs ahead of the data it announces.
/// Notifications sent while this connection was down are gone for good: after it reconnects, <see cref="Reconnected"/>
/// tells every component to reload what it keeps and wake what waits.
/// </summary>
internal sealed class PostgreSqlNotifications : BackgroundService
{
    /// <summary>PostgreSQL refuses a payload of 8000 bytes or more.</summary>
    public const int MaxPayloadBytes = 7999;

    private readonly string _connectionString;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, Action<string>[]> _handlers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _listening = new(StringComparer.Ordinal);
    private readonly TimeSpan _idleCheck;
    private volatile bool _connected;

    /// <param name="idleCheck">How long the connection may sit idle before a <c>SELECT 1</c> checks it is still there (and how soon a newly asked-for channel is listened on).</param>
    public PostgreSqlNotifications(string connectionString, ILogger<PostgreSqlNotifications> logger, TimeSpan? idleCheck = null)
    {
        _connectionString = OwnSession.For(connectionString, "halfmsg-broker-listen");
        _logger = logger;
        _idleCheck = idleCheck ?? TimeSpan.FromSeconds(2);
    }

    /// <summary>Raised on the listening thread after a lost connection was opened again and every channel is listened on once more.</summary>
    public event Action? Reconnected;

    /// <summary>True while the listening connection is open.</summary>
    public bool Connected => _connected;

    /// <summary>
    /// Calls <paramref name="handler"/> (on the listening thread: it must be quick and must not block) with the payload of
    /// every notification on <paramref name="channel"/>. The task completes once the channel is being listened on:
    /// notifications committed after that reach the handler.
    /// </summary>
    public Task ListenAsync(string channel, Action<string> handler)
    {
        _handlers.AddOrUpdate(channel, [handler], (_, existing) => [.. existing, handler]);
        return _listening.GetOrAdd(channel, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
    }

    /// <summary>A batch command that notifies <paramref name="channel"/> with <paramref name="payload"/> when its transaction commits.</summary>
    public static NpgsqlBatchCommand NotifyCommand(string channel, string payload)
    {
        var command = new NpgsqlBatchCommand("SELECT pg_notify($1, $2)");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = channel });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = payload });
        return command;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        var everConnected = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            var listened = new HashSet<string>(StringComparer.Ordinal);
            try
            {
                await using var connection = new NpgsqlConnection(_connectionString);
                await connection.OpenAsync(stoppingToken);
                connection.Notification += (_, e) => Dispatch(e.Channel, e.Payload);
                await ListenOnNewChannelsAsync(connection, listened, stoppingToken);
                _connected = true;
                backoff = TimeSpan.FromMilliseconds(100);
                if (everConnected)
                {
                    _logger.LogInformation("The LISTEN connection to PostgreSQL is back; reloading shared state and waking every waiter");
                    RaiseReconnected();
                }
                everConnected = true;
                while (!stoppingToken.IsCancellationRequested)
                {
                    if (!await connection.WaitAsync((int)_idleCheck.TotalMilliseconds, stoppingToken))
                    {
                        // Idle: a dead peer shows itself only when something is sent.
                        await using var ping = new NpgsqlCommand("SELECT 1", connection) { CommandTimeout = Math.Max(1, (int)_idleCheck.TotalSeconds * 2) };
                        await ping.ExecuteScalarAsync(stoppingToken);
                    }
                    if (_handlers.Count != listened.Count) await ListenOnNewChannelsAsync(connection, listened, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                _connected = false;
                _logger.LogWarning("The LISTEN connection to PostgreSQL failed ({Error}); reconnecting in {Delay} ms. Notifications sent meanwhile are lost, so shared state is reloaded once it is back.",
                    e.Message, backoff.TotalMilliseconds);
                try
                {
                    await Task.Delay(backoff, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 5000));
            }
        }
        _connected = false;
    }

    private async Task ListenOnNewChannelsAsync(NpgsqlConnection connection, HashSet<string> listened, CancellationToken cancellationToken)
    {
        foreach (var channel in _handlers.Keys)
        {
            if (listened.Contains(channel)) continue;
            // LISTEN takes an identifier, not a parameter: quote it as one.
            await using var listen = new NpgsqlCommand($"LISTEN \"{channel.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", connection);
            await listen.ExecuteNonQueryAsync(cancellationToken);
            listened.Add(channel);
            _listening.GetOrAdd(channel, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }
    }

    private void Dispatch(string channel, string payload)
    {
        if (!_handlers.TryGetValue(channel, out var handlers)) return;
        foreach (var handler in handlers)
        {
            try
            {
                handler(payload);
            }
            catch (Exception e)
            {
                _logger.LogError(e, "A handler of the PostgreSQL notification channel {Channel} failed", channel);
            }
        }
    }

    private void RaiseReconnected()
    {
        foreach (var handler in Reconnected?.GetInvocationList() ?? [])
        {
            try
            {
                ((Action)handler)();
            }
            catch (Exception e)
            {
                _logger.LogError(e, "A reload after the LISTEN connection came back failed");
            }
        }
    }
}
