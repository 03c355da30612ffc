using HalfMsgBroker.Access;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>
/// Two brokers on one database: once a successor holds the lock and a newer generation, nothing the deposed
/// one writes lands, and it stops. And a batch whose commit gets no answer stops the store.
/// </summary>
public sealed class PostgreSqlFencingTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    private readonly MessageIds _ids = new();
    private long _clock = 1_000;

    private StoredMessage Message() => new()
    {
        Id = _ids.Next(_clock++),
        Topic = "orders",
        Body = new byte[2],
        State = HalfMsgBroker.Lifecycle.MessageState.Committed,
        BornAt = 1,
    };

    /// <summary>A lock whose own check never runs during the test: only the fence can notice the takeover.</summary>
    private static ActiveBrokerLock Lock(string database, Action lost) =>
        new(database, TimeSpan.FromHours(1), NullLogger.Instance, lost);

    private static async Task Terminate(string database, int pid)
    {
        await using var admin = new NpgsqlConnection(database);
        await admin.OpenAsync();
        await using var kill = new NpgsqlCommand("SELECT pg_terminate_backend($1)", admin);
        kill.Parameters.Add(new NpgsqlParameter<int> { TypedValue = pid });
        Assert.Equal(true, await kill.ExecuteScalarAsync());
    }

    [PostgresFact]
    public async Task A_deposed_broker_cannot_write_a_batch_or_an_access_change_after_a_successor_took_over_and_it_stops()
    {
        var database = await cluster.CreateDatabaseAsync("fence");
        await using var dataSource = NpgsqlDataSource.Create(database);
        PostgreSqlSchema.Migrate(dataSource);
        var deposedStopped = 0;
        using var first = Lock(database, () => Interlocked.Increment(ref deposedStopped));
        first.Acquire();
        first.TakeGeneration(dataSource);
        using var firstStore = new PostgreSqlMessageStore(dataSource, first);
        using var firstAccess = new PostgreSqlAccessStore(dataSource, first);
        var before = Message();
        firstStore.RunBatch(() => firstStore.Insert(before));

        using var second = Lock(database, () => { });
        var standby = Task.Run(() => second.Acquire());
        await Terminate(database, first.BackendPid);
        await standby.WaitAsync(TimeSpan.FromSeconds(30));
        second.TakeGeneration(dataSource);
        Assert.True(second.Generation > first.Generation);
        Assert.False(first.Lost); // its own check has not run: only the fence stands between it and the database

        var late = Message();
        var refused = Assert.Throws<StoreUnavailableException>(() => firstStore.RunBatch(() =>
        {
            firstStore.Insert(late);
            firstStore.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 1 });
        }));
        Assert.Contains("lost its database lock", refused.Message, StringComparison.Ordinal);
        Assert.True(first.Lost);
        Assert.Equal(1, deposedStopped);
        Assert.Throws<StoreUnavailableException>(() => firstAccess.PurgeAudit(long.MaxValue));

        using var secondStore = new PostgreSqlMessageStore(dataSource, second);
        Assert.NotNull(secondStore.Find(before.Id));
        Assert.Null(secondStore.Find(late.Id));
        Assert.Empty(secondStore.TopicCounts());
        // The successor writes as before.
        secondStore.RunBatch(() => secondStore.Insert(Message()));
    }

    [PostgresFact]
    public async Task A_deposed_brokers_access_write_is_refused_and_lands_nowhere()
    {
        var database = await cluster.CreateDatabaseAsync("fenceaccess");
        await using var dataSource = NpgsqlDataSource.Create(database);
        PostgreSqlSchema.Migrate(dataSource);
        var stopped = 0;
        using var first = Lock(database, () => Interlocked.Increment(ref stopped));
        first.Acquire();
        first.TakeGeneration(dataSource);
        using var firstAccess = new PostgreSqlAccessStore(dataSource, first);
        firstAccess.Append(1, "admin", "key.create", "k1", null);

        using var second = Lock(database, () => { });
        var standby = Task.Run(() => second.Acquire());
        await Terminate(database, first.BackendPid);
        await standby.WaitAsync(TimeSpan.FromSeconds(30));
        second.TakeGeneration(dataSource);

        Assert.Throws<StoreUnavailableException>(() => firstAccess.Append(2, "admin", "key.revoke", "k1", "late"));
        Assert.Equal(1, stopped);
        using var secondAccess = new PostgreSqlAccessStore(dataSource, second);
        Assert.Single(secondAccess.Audit(0, 10));
    }

    [PostgresFact]
    public async Task A_batch_whose_commit_gets_no_answer_stops_the_store_and_does_not_claim_nothing_changed()
    {
        var direct = await cluster.CreateDatabaseAsync("unknown");
        var database = new NpgsqlConnectionStringBuilder(direct);
        await using var proxy = TcpProxy.Start(database.Port);
        database.Port = proxy.Port;
        database.Timeout = 3;
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        PostgreSqlSchema.Migrate(dataSource);
        Exception? reported = null;
        using var store = new PostgreSqlMessageStore(dataSource, writeFailed: e => reported = e);
        store.RunBatch(() => store.Insert(Message()));

        // Hold the batch in flight: its insert waits for a table lock the test holds.
        await using var blocker = new NpgsqlConnection(direct);
        await blocker.OpenAsync();
        await using var transaction = await blocker.BeginTransactionAsync();
        await using (var lockTable = new NpgsqlCommand("LOCK TABLE halfmsg_messages IN EXCLUSIVE MODE", blocker, transaction)) await lockTable.ExecuteNonQueryAsync();
        var inFlight = Message();
        var batch = Task.Run(() => store.RunBatch(() => store.Insert(inFlight)));
        await Eventually.Until(async () =>
        {
            await using var waiting = new NpgsqlCommand(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", blocker, transaction);
            return (long)(await waiting.ExecuteScalarAsync())!;
        }, n => n == 1, "the batch waiting for the table lock");

        proxy.Cut();
        var refused = await Assert.ThrowsAsync<StoreOutcomeUnknownException>(() => batch);
        await transaction.CommitAsync();
        Assert.Contains("unknown", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("nothing was changed", refused.Message, StringComparison.Ordinal);
        Assert.NotNull(reported);
        Assert.NotNull(store.WriteFailure);

        // PostgreSQL answering again changes nothing: memory may disagree with the database until a restart recovers it.
        proxy.Restore();
        var next = Assert.Throws<StoreOutcomeUnknownException>(() => store.RunBatch(() => store.Insert(Message())));
        Assert.Contains("unknown", next.Message, StringComparison.Ordinal);
    }
}
