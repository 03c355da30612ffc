using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// A multi-active batch reads and locks what its commands name in one query (<see cref="IBatchPrefetch"/>): the rows stay
/// locked until the batch ends, its lookups answer from them, and two brokers' batches naming the same messages in opposite
/// order take the locks in the same (id) order, so they wait for each other rather than deadlock.
/// </summary>
public sealed class MultiActiveBatchLookupTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    private static readonly MultiActiveOptions Options = new(TimeSpan.FromSeconds(1), TimeProvider.System);

    private static async Task<NpgsqlDataSource> Database(PostgresCluster cluster, string name)
    {
        var dataSource = NpgsqlDataSource.Create(await cluster.CreateDatabaseAsync(name));
        PostgreSqlSchema.Migrate(dataSource);
        return dataSource;
    }

    private static StoredMessage Prepared(MessageIds ids, long at, string? transactionId = null) => new()
    {
        Id = ids.Next(at), Topic = "orders", Body = new byte[2], State = MessageState.Prepared, BornAt = at, NextCheckAt = at, TransactionId = transactionId,
    };

    private static BatchLookups Lookups(IEnumerable<Guid> ids, IEnumerable<string> transactionIds, IEnumerable<string>? fanOutTopics = null)
    {
        var lookups = new BatchLookups();
        lookups.Ids.UnionWith(ids);
        lookups.TransactionIds.UnionWith(transactionIds);
        lookups.FanOutTopics.UnionWith(fanOutTopics ?? []);
        return lookups;
    }

    [PostgresFact]
    public async Task A_prefetch_reads_and_locks_the_subscriptions_of_the_topics_its_commits_and_sends_fan_out_to()
    {
        await using var dataSource = await Database(cluster, "prefetchfanout");
        var ids = new MessageIds();
        using var store = new PostgreSqlMessageStore(dataSource, multiActive: Options);
        store.RunBatch(() =>
        {
            store.Insert(Prepared(ids, 1, "tx-1"));
            store.SaveSubscription(new Subscription("g1", "orders", TagFilter.All, null, 5, ExhaustedAction.DeadLetter, 1));
            store.SaveSubscription(new Subscription("g2", "orders", TagFilter.All, null, 5, ExhaustedAction.DeadLetter, 1));
            store.SaveSubscription(new Subscription("g3", "payments", TagFilter.All, null, 5, ExhaustedAction.DeadLetter, 1));
        });
        var shared = (ISharedSubscriptions)store;

        var readsBefore = store.FanOutReads;
        store.RunBatch(() =>
        {
            // "orders" through the commit's transaction, "refunds" (no subscription) and "payments" through sends.
            ((IBatchPrefetch)store).Prefetch(Lookups([], ["tx-1"], ["refunds", "payments"]));
            // A subscription change on another session waits for the batch: each topic's lock is held shared.
            using var other = dataSource.OpenConnection();
            foreach (var topic in new[] { "orders", "refunds", "payments" })
            {
                using var tryLock = new NpgsqlCommand("SELECT pg_try_advisory_xact_lock($1, hashtext($2))", other);
                tryLock.Parameters.Add(new NpgsqlParameter<int> { TypedValue = PostgreSqlMessageStore.TopicLockSpace });
                tryLock.Parameters.Add(new NpgsqlParameter<string> { TypedValue = topic });
                Assert.False((bool)tryLock.ExecuteScalar()!, $"{topic}'s lock was free during the batch");
            }
            Assert.Equal(["g1", "g2"], shared.SubscriptionsForFanOut("orders")!.Select(s => s.Group).Order());
            Assert.Equal(["g3"], shared.SubscriptionsForFanOut("payments")!.Select(s => s.Group));
            Assert.Empty(shared.SubscriptionsForFanOut("refunds")!);
        });
        Assert.Equal(readsBefore, store.FanOutReads);

        // A topic the prefetch did not name is still read, in a round trip of its own.
        store.RunBatch(() => Assert.Equal(["g3"], shared.SubscriptionsForFanOut("payments")!.Select(s => s.Group)));
        Assert.Equal(readsBefore + 1, store.FanOutReads);
    }

    [PostgresFact]
    public async Task A_prefetch_locks_its_rows_until_the_batch_ends_and_the_batchs_lookups_answer_from_it()
    {
        await using var dataSource = await Database(cluster, "prefetch");
        var ids = new MessageIds();
        using var store = new PostgreSqlMessageStore(dataSource, multiActive: Options);
        var byId = Prepared(ids, 1);
        var byTransaction = Prepared(ids, 2, "tx-1");
        store.RunBatch(() =>
        {
            store.Insert(byId);
            store.Insert(byTransaction);
        });
        var absent = ids.Next(3);

        var prefetchesBefore = store.Prefetches;
        store.RunBatch(() =>
        {
            ((IBatchPrefetch)store).Prefetch(Lookups([absent, byId.Id], ["tx-1", "tx-unknown"]));
            // Another session cannot change a prefetched row while the batch runs.
            using var other = dataSource.OpenConnection();
            foreach (var id in new[] { byId.Id, byTransaction.Id })
            {
                using var tryLock = new NpgsqlCommand("SELECT 1 FROM halfmsg_messages WHERE id = $1 FOR UPDATE NOWAIT", other);
                tryLock.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
                var refused = Assert.Throws<PostgresException>(() => tryLock.ExecuteScalar());
                Assert.Equal(PostgresErrorCodes.LockNotAvailable, refused.SqlState);
            }
            Assert.Equal(byId.Id, store.Find(byId.Id)?.Id);
            Assert.Equal(byTransaction.Id, store.FindByTransactionId("tx-1")?.Id);
            Assert.Null(store.Find(absent));
            Assert.Null(store.FindByTransactionId("tx-unknown"));
        });
        Assert.Equal(prefetchesBefore + 1, store.Prefetches);

        // The batch ended: the locks are gone.
        using var after = dataSource.OpenConnection();
        using var free = new NpgsqlCommand("SELECT id FROM halfmsg_messages WHERE id = ANY($1) FOR UPDATE NOWAIT", after);
        free.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = [byId.Id, byTransaction.Id] });
        using var reader = free.ExecuteReader();
        var locked = 0;
        while (reader.Read()) locked++;
        Assert.Equal(2, locked);
    }

    [PostgresFact]
    public async Task Two_brokers_batches_prefetching_the_same_messages_in_opposite_order_neither_deadlock_nor_lose_an_update()
    {
        await using var dataSource = await Database(cluster, "prefetchorder");
        var ids = new MessageIds();
        using var a = new PostgreSqlMessageStore(dataSource, multiActive: Options);
        using var b = new PostgreSqlMessageStore(dataSource, multiActive: Options);
        var messages = Enumerable.Range(1, 8).Select(i => Prepared(ids, i)).ToList();
        a.RunBatch(() => messages.ForEach(a.Insert));
        var forward = messages.Select(m => m.Id).ToList();
        var backward = Enumerable.Reverse(forward).ToList();

        const int rounds = 40;
        using var start = new Barrier(2);
        void Run(PostgreSqlMessageStore store, List<Guid> order)
        {
            for (var round = 0; round < rounds; round++)
            {
                start.SignalAndWait(TimeSpan.FromSeconds(30));
                store.RunBatch(() =>
                {
                    ((IBatchPrefetch)store).Prefetch(Lookups(order, []));
                    foreach (var id in order)
                    {
                        var message = store.Find(id)!;
                        message.CheckCount++;
                        store.Update(message);
                    }
                });
            }
        }
        // Any deadlock or conflict would surface here as a StoreConflictException.
        await Task.WhenAll(Task.Run(() => Run(a, forward)), Task.Run(() => Run(b, backward)));

        foreach (var id in forward) Assert.Equal(2 * rounds, a.Find(id)!.CheckCount);
    }
}
