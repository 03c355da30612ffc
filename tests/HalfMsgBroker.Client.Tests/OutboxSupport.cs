using System.Collections.Concurrent;
using System.Data.Common;
using System.Net;
using System.Net.Sockets;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace HalfMsgBroker.Client.Tests;

/// <summary>An app's own SQLite database on a temp file, with the outbox table and a business table.</summary>
public sealed class OutboxDb : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-outbox-" + Guid.NewGuid().ToString("N") + ".db");

    public OutboxDb()
    {
        // Relays and writers on separate connections wait for each other's write lock (busy timeout).
        ConnectionString = new SqliteConnectionStringBuilder { DataSource = _path, Pooling = false, DefaultTimeout = 30 }.ToString();
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "CREATE TABLE payments (payment_id TEXT PRIMARY KEY, amount INTEGER NOT NULL); CREATE TABLE effects (message_id TEXT NOT NULL);";
        command.ExecuteNonQuery();
    }

    public string ConnectionString { get; }

    public SqliteConnection Create() => new(ConnectionString);

    public SqliteConnection Open()
    {
        var connection = Create();
        connection.Open();
        return connection;
    }

    /// <summary>The app's local transaction: a payment row and its message, committed or rolled back together.</summary>
    public async Task<string> PayAsync(IOutbox outbox, string topic, string paymentId, bool commit = true)
    {
        await using var connection = Open();
        await using var transaction = connection.BeginTransaction();
        await using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = "INSERT INTO payments (payment_id, amount) VALUES ($p, 10)";
            command.Parameters.AddWithValue("$p", paymentId);
            await command.ExecuteNonQueryAsync();
        }

        var rowId = await outbox.AddAsync(transaction, topic, new { paymentId, amount = 10 }, new OutboxMessageOptions { Tag = "paid", Keys = [paymentId] });
        if (commit)
        {
            await transaction.CommitAsync();
            outbox.Notify();
        }
        else
        {
            await transaction.RollbackAsync();
        }

        return rowId;
    }

    public long Scalar(string sql, params (string Name, object Value)[] parameters)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return command.ExecuteScalar() is { } result and not DBNull ? Convert.ToInt64(result, System.Globalization.CultureInfo.InvariantCulture) : -1;
    }

    public long Count(string where = "1 = 1") => Scalar("SELECT COUNT(*) FROM halfmsg_outbox WHERE " + where);

    public void Dispose()
    {
        try
        {
            File.Delete(_path);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// Every send the relays made, recorded where the request leaves the client (a handler in the client's
/// pipeline): per Idempotency-Key the number of sends, the most in flight at once, and the statuses.
/// </summary>
public sealed class SendLog
{
    private readonly ConcurrentDictionary<string, int> _inFlight = new();

    public ConcurrentDictionary<string, int> Sends { get; } = new();

    public ConcurrentDictionary<string, int> MostInFlight { get; } = new();

    public ConcurrentQueue<(string Key, string Relay, int Status, DateTimeOffset At)> Answers { get; } = new();

    public IDisposable Begin(string key)
    {
        Sends.AddOrUpdate(key, 1, (_, n) => n + 1);
        var now = _inFlight.AddOrUpdate(key, 1, (_, n) => n + 1);
        MostInFlight.AddOrUpdate(key, now, (_, n) => Math.Max(n, now));
        return new End(() => _inFlight.AddOrUpdate(key, 0, (_, n) => n - 1));
    }

    private sealed class End(Action end) : IDisposable
    {
        public void Dispose() => end();
    }
}

/// <summary>
/// In the client pipeline of one relay: records its sends in <see cref="SendLog"/>, sends them to
/// <see cref="Target"/> instead of the configured broker when set (a closed port), and, when
/// <see cref="HangAfterAnswer"/>, holds the broker's answer back forever: the relay process "died" after
/// the broker stored the message and before the row was marked sent.
/// </summary>
public sealed class RelayClient : IAsyncDisposable
{
    private readonly ServiceProvider _services;
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public RelayClient(Uri broker, SendLog log, string name)
    {
        Log = log;
        Name = name;
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHalfMsgClient(o =>
            {
                o.BaseAddress = broker;
                o.ApiKey = KeyedBrokerFixture.AdminKey;
                o.MaxRetryAttempts = 0; // the relay's own backoff is under test
            })
            .HttpClient.AddHttpMessageHandler(() => new Recorder(this));
        _services = services.BuildServiceProvider();
        Api = _services.GetRequiredService<IHalfMsgApi>();
    }

    public string Name { get; }

    public SendLog Log { get; }

    internal IHalfMsgApi Api { get; }

    public Uri? Target { get; set; }

    public bool HangAfterAnswer { get; set; }

    /// <summary>When set, every send waits for it first (say, until another relay has had an answer).</summary>
    public Task? HoldSendsUntil { get; set; }

    private readonly TaskCompletionSource _answered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes with this client's first answer from the broker.</summary>
    public Task Answered => _answered.Task;

    private readonly TaskCompletionSource _sendStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when this client's relay starts its first send (it has claimed rows), before any hold.</summary>
    public Task SendStarted => _sendStarted.Task;

    private int _held;

    /// <summary>Answers sent to the broker and held back (<see cref="HangAfterAnswer"/>).</summary>
    public int Held => Volatile.Read(ref _held);

    /// <summary>Lets held answers fail, so the "dead" relay can be disposed at the end of a test.</summary>
    public void ReleaseHeld() => _release.TrySetException(new HttpRequestException("the relay process is gone"));

    public async ValueTask DisposeAsync()
    {
        ReleaseHeld();
        await _services.DisposeAsync();
    }

    /// <summary>A port on loopback that nothing listens on.</summary>
    public static Uri ClosedPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return new Uri($"http://127.0.0.1:{((IPEndPoint)socket.LocalEndPoint!).Port}");
    }

    private sealed class Recorder(RelayClient owner) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var key = request.Headers.TryGetValues("Idempotency-Key", out var values) ? values.Single() : null;
            if (key is null)
            {
                return await base.SendAsync(request, cancellationToken);
            }

            if (owner.Target is { } target)
            {
                request.RequestUri = new UriBuilder(request.RequestUri!) { Host = target.Host, Port = target.Port }.Uri;
            }

            owner._sendStarted.TrySetResult();
            if (owner.HoldSendsUntil is { } hold)
            {
                await hold.WaitAsync(cancellationToken);
            }

            using (owner.Log.Begin(key))
            {
                var response = await base.SendAsync(request, cancellationToken);
                owner.Log.Answers.Enqueue((key, owner.Name, (int)response.StatusCode, DateTimeOffset.UtcNow));
                owner._answered.TrySetResult();
                if (owner.HangAfterAnswer)
                {
                    Interlocked.Increment(ref owner._held);
                    await owner._release.Task; // deaf to cancellation: a dead process records nothing
                }

                return response;
            }
        }
    }
}

/// <summary>A relay built by hand (as <c>AddHalfMsgOutbox</c> builds it), on a given clock.</summary>
public static class Relays
{
    public static HalfMsgOutboxOptions FastOptions(string relayId) => new()
    {
        RelayId = relayId,
        PollInterval = TimeSpan.FromMilliseconds(50),
        LeaseDuration = TimeSpan.FromSeconds(30),
        RetryDelay = TimeSpan.FromMilliseconds(100),
        MaxRetryDelay = TimeSpan.FromSeconds(1),
    };

    internal static OutboxRelay Create(RelayClient client, OutboxDb db, HalfMsgOutboxOptions options, TimeProvider? time = null, OutboxSignal? signal = null) =>
        Create(client, db.Create, options, time, signal);

    internal static OutboxRelay Create(RelayClient client, Func<DbConnection> connection, HalfMsgOutboxOptions options, TimeProvider? time = null, OutboxSignal? signal = null) =>
        new(client.Api, connection, options, signal ?? new OutboxSignal(), time ?? TimeProvider.System, NullLogger<OutboxRelay>.Instance);

    internal static IOutbox Outbox(TimeProvider? time = null, OutboxSignal? signal = null) =>
        new DbOutbox(new OutboxTable("halfmsg_outbox", "@"), new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web), time ?? TimeProvider.System, signal ?? new OutboxSignal());

    public static async Task EnsureTableAsync(OutboxDb db)
    {
        await using DbConnection connection = db.Open();
        await Outbox().EnsureCreatedAsync(connection);
    }
}

/// <summary>The claim race, played out step by step on any database.</summary>
public static class ClaimRace
{
    /// <summary>
    /// Two relays select the same due rows; the first to lease them gets them all, the second none; once the
    /// lease has run out, a claim takes them again.
    /// </summary>
    public static async Task PlayAsync(Func<DbConnection> create, string topic)
    {
        var table = new OutboxTable("halfmsg_outbox", "@");
        var outbox = Relays.Outbox();
        await using var a = create();
        await using var b = create();
        await a.OpenAsync();
        await b.OpenAsync();
        await outbox.EnsureCreatedAsync(a);
        var rows = new List<string>();
        await using (var transaction = await a.BeginTransactionAsync())
        {
            for (var i = 0; i < 4; i++)
            {
                rows.Add(await outbox.AddAsync(transaction, topic, new { race = i }));
            }

            await transaction.CommitAsync();
        }

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 1;
        var seenByA = await table.SelectDueAsync(a, now, 10, CancellationToken.None);
        var seenByB = await table.SelectDueAsync(b, now, 10, CancellationToken.None);
        Assert.Equal(rows.Order(), seenByA.Order());
        Assert.Equal(seenByA, seenByB);

        var leasedByA = await table.LeaseAsync(a, seenByA, "a/1", now, now + 60_000, CancellationToken.None);
        var leasedByB = await table.LeaseAsync(b, seenByB, "b/1", now, now + 60_000, CancellationToken.None);
        Assert.Equal(rows.Order(), leasedByA.Select(r => r.Id).Order());
        Assert.Empty(leasedByB);
        Assert.Empty(await table.ClaimAsync(b, "b/2", now + 60_000, now + 120_000, 10, CancellationToken.None)); // lease ends after, not at, lease_until

        var retaken = await table.ClaimAsync(b, "b/3", now + 60_001, now + 120_001, 10, CancellationToken.None);
        Assert.Equal(rows.Order(), retaken.Select(r => r.Id).Order());
        Assert.All(retaken, r => Assert.Equal(topic, r.Topic));
        foreach (var row in retaken)
        {
            Assert.True(await table.MarkSentAsync(b, row.Id, "b/3", now, keep: false, CancellationToken.None)); // deleted: the table is left as found
        }
    }
}
