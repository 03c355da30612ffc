using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// What a transaction costs in round trips, counted on the wire (<see cref="RoundTripCounter"/>): on a 2-core machine a
/// multi-active broker's transactions cost PostgreSQL more in wake-ups than in statements. A batch with lookups ends its
/// transaction with the COMMIT in its write round trip, a claim is one round trip, and a pooled connection goes back to
/// the pool without a reset query (the broker leaves no session state behind, which these tests check too).
/// </summary>
public sealed class RoundTripTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    private static readonly MultiActiveOptions Options = new(TimeSpan.FromSeconds(1), TimeProvider.System);

    /// <summary>A counter in front of the test database's server.</summary>
    private static RoundTripCounter CounterFor(string database) => RoundTripCounter.Start(new NpgsqlConnectionStringBuilder(database).Port);

    /// <summary>A multi-active store on a migrated database, writing through <paramref name="dataSource"/>.</summary>
    private static PostgreSqlMessageStore MultiActiveStore(NpgsqlDataSource dataSource)
    {
        PostgreSqlSchema.Migrate(dataSource);
        return new PostgreSqlMessageStore(dataSource, multiActive: Options);
    }

    /// <summary>A pool as the broker makes it (<see cref="PostgreSqlHosting.WithPoolDefaults"/>), through the counter.</summary>
    private static NpgsqlDataSource Counted(string database, RoundTripCounter counter, int maxPoolSize = 10, string? options = null)
    {
        var builder = new NpgsqlConnectionStringBuilder(database) { Port = counter.Port, MaxPoolSize = maxPoolSize };
        if (options is not null) builder.Options = options;
        return NpgsqlDataSource.Create(PostgreSqlHosting.WithPoolDefaults(builder.ConnectionString));
    }

    private static StoredMessage Prepared(MessageIds ids, long at, string transactionId) => new()
    {
        Id = ids.Next(at), Topic = "orders", Body = new byte[2], State = MessageState.Prepared, BornAt = at, NextCheckAt = at, TransactionId = transactionId,
    };

    [PostgresFact]
    public async Task A_batch_that_locked_what_it_read_writes_and_commits_in_one_round_trip()
    {
        var database = await cluster.CreateDatabaseAsync("roundtrips");
        await using var counter = CounterFor(database);
        await using var dataSource = Counted(database, counter);
        using var store = MultiActiveStore(dataSource);
        var ids = new MessageIds();
        var messages = Enumerable.Range(0, 3).Select(i => Prepared(ids, i + 1, $"tx-{i}")).ToList();
        store.RunBatch(() =>
        {
            foreach (var m in messages) store.Insert(m);
        });
        var writer = store.WriterProcessId;

        for (var round = 0; round < 2; round++)
        {
            var before = counter.RoundTrips;
            store.RunBatch(() =>
            {
                var lookups = new BatchLookups();
                lookups.TransactionIds.UnionWith(messages.Select(m => m.TransactionId!));
                ((IBatchPrefetch)store).Prefetch(lookups);
                foreach (var m in messages)
                {
                    var stored = store.FindByTransactionId(m.TransactionId!)!;
                    stored.NextCheckAt += 1000;
                    store.Update(stored);
                }
            });
            // The prefetch (Npgsql sends the BEGIN ahead of it), then the writes with the COMMIT: before, the COMMIT was a third.
            Assert.Equal(2, counter.RoundTrips - before);
        }

        // Committed: another session (not through the counter) reads the writes, and the writer kept its session.
        await using var direct = NpgsqlDataSource.Create(database);
        using var check = new PostgreSqlMessageStore(direct);
        Assert.All(messages, m => Assert.Equal(m.NextCheckAt + 2000, check.Find(m.Id)!.NextCheckAt));
        store.RunBatch(() => store.Insert(Prepared(ids, 10, "tx-after")));
        Assert.Equal(writer, store.WriterProcessId);
        Assert.NotNull(check.FindByTransactionId("tx-after"));
    }

    [PostgresFact]
    public async Task A_batch_refused_after_its_lookups_stores_none_of_it_and_leaves_no_transaction_open()
    {
        var database = await cluster.CreateDatabaseAsync("roundtripsrefused");
        await using var counter = CounterFor(database);
        await using var dataSource = Counted(database, counter);
        using var store = MultiActiveStore(dataSource);
        var ids = new MessageIds();
        var first = Prepared(ids, 1, "tx-1");
        store.RunBatch(() => store.Insert(first));

        // The batch's write fails (a duplicate transaction id) after its lookups began the transaction: the COMMIT behind
        // it is skipped and the transaction rolled back, so the update before the duplicate is not stored either.
        Assert.Throws<DuplicateKeyException>(() => store.RunBatch(() =>
        {
            var lookups = new BatchLookups();
            lookups.Ids.Add(first.Id);
            ((IBatchPrefetch)store).Prefetch(lookups);
            var stored = store.Find(first.Id)!;
            stored.NextCheckAt = 99;
            store.Update(stored);
            store.Insert(Prepared(ids, 2, "tx-1"));
        }));

        await using var direct = NpgsqlDataSource.Create(database);
        using var check = new PostgreSqlMessageStore(direct);
        Assert.Equal(first.NextCheckAt, check.Find(first.Id)!.NextCheckAt);
        // Nothing holds the row: the failed transaction ended.
        await using (var other = await direct.OpenConnectionAsync())
        await using (var tryLock = new NpgsqlCommand("SELECT 1 FROM halfmsg_messages WHERE id = $1 FOR UPDATE NOWAIT", other))
        {
            tryLock.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = first.Id });
            Assert.Equal(1, await tryLock.ExecuteScalarAsync());
        }
        store.RunBatch(() => store.Insert(Prepared(ids, 3, "tx-2")));
        Assert.NotNull(check.FindByTransactionId("tx-2"));
    }

    [PostgresFact]
    public async Task A_claim_is_one_round_trip_and_leaves_its_pooled_session_as_it_found_it()
    {
        var database = await cluster.CreateDatabaseAsync("roundtripsclaim");
        await using var direct = NpgsqlDataSource.Create(database);
        PostgreSqlSchema.Migrate(direct);
        await AddRows(direct, 3);
        await using var counter = CounterFor(database);
        // One connection: the claim and the checks after it share a session.
        await using var dataSource = Counted(database, counter, maxPoolSize: 1);
        var pid = await Scalar<int>(dataSource, "SELECT pg_backend_pid()");
        var rows = new DeliveryRows(dataSource);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        var before = (counter.RoundTrips, counter.Queries);
        var claimed = await rows.ClaimAsync("g", "orders", 2, now, now + 30_000, 5);
        Assert.Equal(2, claimed.Count);
        // BEGIN, SET LOCAL, the claim and COMMIT in one batch; no reset query went ahead of it.
        Assert.Equal((before.RoundTrips + 1, before.Queries), (counter.RoundTrips, counter.Queries));

        // The same session, with no reset query in between, shows nothing of the claim's SET LOCAL or transaction.
        Assert.Equal(pid, await Scalar<int>(dataSource, "SELECT pg_backend_pid()"));
        Assert.Equal("on", await Scalar<string>(dataSource, "SHOW synchronous_commit"));
        Assert.Equal(before.Queries, counter.Queries);
        // Committed: another session sees the two leases.
        Assert.Equal(2L, await Scalar<long>(direct, "SELECT count(*) FROM halfmsg_deliveries WHERE nonce <> 0"));
    }

    [PostgresFact]
    public async Task A_claim_that_fails_leaves_nothing_claimed_and_its_pooled_session_out_of_the_transaction()
    {
        var database = await cluster.CreateDatabaseAsync("roundtripsclaimfails");
        await using var direct = NpgsqlDataSource.Create(database);
        PostgreSqlSchema.Migrate(direct);
        await AddRows(direct, 2);
        await using var counter = CounterFor(database);
        await using var dataSource = Counted(database, counter, maxPoolSize: 1, options: "-c lock_timeout=200");
        var rows = new DeliveryRows(dataSource);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        // Another session holds the table: the claim's UPDATE gives up on its lock, after BEGIN and SET LOCAL ran.
        await using (var blocker = await direct.OpenConnectionAsync())
        {
            await using var hold = await blocker.BeginTransactionAsync();
            await using (var lockTable = new NpgsqlCommand("LOCK TABLE halfmsg_deliveries IN ACCESS EXCLUSIVE MODE", blocker, hold))
            {
                await lockTable.ExecuteNonQueryAsync();
            }
            var refused = await Assert.ThrowsAnyAsync<Exception>(() => rows.ClaimAsync("g", "orders", 2, now, now + 30_000, 5));
            Assert.Contains("55P03", refused.ToString(), StringComparison.Ordinal);
            await hold.RollbackAsync();
        }

        // The pooled session was rolled back on its way into the pool: no lease, no setting, and the next claim works.
        Assert.Equal("on", await Scalar<string>(dataSource, "SHOW synchronous_commit"));
        Assert.Equal(0L, await Scalar<long>(direct, "SELECT count(*) FROM halfmsg_deliveries WHERE nonce <> 0"));
        Assert.Equal(2, (await rows.ClaimAsync("g", "orders", 2, now, now + 30_000, 5)).Count);
    }

    private static async Task AddRows(NpgsqlDataSource dataSource, int count)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var insert = new NpgsqlCommand("""
            INSERT INTO halfmsg_deliveries (message_id, consumer_group, topic, visible_at, nonce, attempts, ordering_key, commit_seq, stored_key)
            SELECT gen_random_uuid(), 'g', 'orders', 0, 0, 0, NULL, 0, 0 FROM generate_series(1, $1)
            """, connection);
        insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = count });
        await insert.ExecuteNonQueryAsync();
    }

    private static async Task<T> Scalar<T>(NpgsqlDataSource dataSource, string sql)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
