using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>What only the PostgreSQL store has: statements split by size, and a database that goes away and comes back.</summary>
public sealed class PostgreSqlMessageStoreTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    private readonly MessageIds _ids = new();
    private long _clock = 1_000;

    private StoredMessage Message(int bodyBytes = 2, string? tx = null, string[]? keys = null) => new()
    {
        Id = _ids.Next(_clock++),
        Topic = "orders",
        TransactionId = tx,
        ProducerGroup = tx is null ? null : "pg",
        Keys = keys ?? [],
        Body = new byte[bodyBytes],
        State = HalfMsgBroker.Lifecycle.MessageState.Committed,
        BornAt = 1,
    };

    [PostgresFact]
    public async Task A_batch_of_large_bodies_is_split_into_statements_under_PostgreSQLs_value_limit_and_stored_whole()
    {
        await using var dataSource = NpgsqlDataSource.Create(await cluster.CreateDatabaseAsync("large"));
        PostgreSqlSchema.Migrate(dataSource);
        var messages = Enumerable.Range(0, 40).Select(_ => Message(4 * 1024 * 1024)).ToArray();

        var pending = new PendingWrites();
        foreach (var m in messages) pending.Insert(m);
        using (var built = pending.Build(null!))
        {
            var inserts = built.BatchCommands.Cast<NpgsqlBatchCommand>().Count(c => c.CommandText.Contains("INSERT INTO halfmsg_messages", StringComparison.Ordinal));
            Assert.Equal((int)Math.Ceiling(40 * 4.0 * 1024 * 1024 / PendingWrites.MaxStatementBytes), inserts);
        }

        using var store = new PostgreSqlMessageStore(dataSource);
        store.RunBatch(() =>
        {
            foreach (var m in messages) store.Insert(m);
        });
        Assert.All(messages, m => Assert.Equal(4 * 1024 * 1024, store.Find(m.Id)!.Body.Length));
    }

    [PostgresFact]
    public async Task A_batch_PostgreSQL_refuses_leaves_none_of_its_writes_behind_and_the_writer_keeps_its_connection()
    {
        await using var dataSource = NpgsqlDataSource.Create(await cluster.CreateDatabaseAsync("refused"));
        PostgreSqlSchema.Migrate(dataSource);
        using var store = new PostgreSqlMessageStore(dataSource);
        var first = Message(tx: "tx-1");
        store.RunBatch(() => store.Insert(first));
        var writer = store.WriterProcessId;
        Assert.NotEqual(0, writer);

        var keyed = Message(keys: ["order-7"]);
        var duplicate = Message(tx: "tx-1");
        var deadLetter = new DeadLetterRef("g", "orders", first.Id);
        // The unique index refuses the duplicate at the commit, after every other statement of the batch ran.
        Assert.Throws<DuplicateKeyException>(() => store.RunBatch(() =>
        {
            store.Insert(keyed);
            store.PutDeadLetter(deadLetter, 5);
            store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 2 });
            store.SaveSubscription(new Subscription("g", "orders", HalfMsgBroker.Lifecycle.TagFilter.All, null, 5, HalfMsgBroker.Lifecycle.ExhaustedAction.DeadLetter, 1));
            store.Insert(duplicate);
        }));

        Assert.Null(store.Find(keyed.Id));
        Assert.Null(store.Find(duplicate.Id));
        Assert.Empty(store.FindByKey("order-7", null, null, 10).Items);
        Assert.Equal(0, store.CountDeadLetters("g", "orders"));
        Assert.Empty(store.TopicCounts());
        Assert.Empty(store.Subscriptions());
        Assert.Equal(first.Id, store.FindByTransactionId("tx-1")!.Id);
        store.RunBatch(() => store.Insert(keyed));
        Assert.Equal(writer, store.WriterProcessId);
    }

    [PostgresFact]
    public async Task While_PostgreSQL_is_unreachable_batches_and_reads_are_unavailable_and_nothing_half_written_remains()
    {
        var database = new NpgsqlConnectionStringBuilder(await cluster.CreateDatabaseAsync("unreachable"));
        await using var proxy = TcpProxy.Start(database.Port);
        database.Port = proxy.Port;
        database.Timeout = 3;
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        PostgreSqlSchema.Migrate(dataSource);
        using var store = new PostgreSqlMessageStore(dataSource);
        var stored = Message();
        store.RunBatch(() => store.Insert(stored));

        proxy.Cut();
        var lost = Message();
        // The writer's connection breaks under the batch: PostgreSQL might have committed it, so the store stops taking writes.
        var unknown = Assert.Throws<StoreOutcomeUnknownException>(() => store.RunBatch(() => store.Insert(lost)));
        Assert.Contains("unknown", unknown.Message, StringComparison.Ordinal);
        Assert.Throws<StoreUnavailableException>(() => store.Find(stored.Id));
        Assert.Throws<StoreUnavailableException>(() => store.DueChecks(long.MaxValue / 2, 10));
        Assert.Throws<StoreOutcomeUnknownException>(() => store.RunBatch(() => store.Find(stored.Id)));

        proxy.Restore();
        Assert.Throws<StoreOutcomeUnknownException>(() => store.RunBatch(() => store.Insert(Message())));
        // A restarted broker's store: pooled connections broken by the cut fail once each and are dropped; the writer opens a new one.
        using var restarted = new PostgreSqlMessageStore(dataSource);
        var next = Message();
        await Eventually.Until(() =>
        {
            try
            {
                restarted.RunBatch(() => restarted.Insert(next));
                return true;
            }
            catch (StoreUnavailableException)
            {
                return false;
            }
        }, "a batch once PostgreSQL is back");
        var found = await Eventually.Until(() =>
        {
            try
            {
                return Task.FromResult((restarted.Find(stored.Id), restarted.Find(next.Id), restarted.Find(lost.Id)));
            }
            catch (StoreUnavailableException)
            {
                return Task.FromResult<(StoredMessage?, StoredMessage?, StoredMessage?)>((null, null, null));
            }
        }, r => r.Item1 is not null, "reads once PostgreSQL is back");
        Assert.NotNull(found.Item2);
        Assert.Null(found.Item3);
    }
}
