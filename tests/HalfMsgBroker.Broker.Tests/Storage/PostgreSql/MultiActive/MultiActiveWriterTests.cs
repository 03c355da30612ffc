using System.Net;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// Every broker on the database writes: two brokers' transitions of one message serialize on its row, a key sent to two
/// brokers at once is stored once, and a deadlock between two brokers' batches rolls one back as a conflict to retry.
/// </summary>
public sealed class MultiActiveWriterTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task A_commit_on_one_broker_racing_a_rollback_on_another_has_exactly_one_winner()
    {
        var database = await cluster.CreateDatabaseAsync("race");
        var nodes = MultiActiveNodes.Start(database, 2);
        try
        {
            using var one = nodes[0].CreateClient();
            using var two = nodes[1].CreateClient();
            var ids = Enumerable.Range(0, 40).Select(i => $"race-{i}").ToList();
            foreach (var tx in ids) await one.SendHalf("orders", tx);

            // Both brokers' batches are held until each has read its messages (a plain read passes the table lock, a locking
            // read or a write waits): without row locks both would read "prepared" and both would win.
            await using var blocker = new NpgsqlConnection(database);
            await blocker.OpenAsync();
            var hold = await blocker.BeginTransactionAsync();
            await using (var lockTable = new NpgsqlCommand("LOCK TABLE halfmsg_messages IN EXCLUSIVE MODE", blocker, hold)) await lockTable.ExecuteNonQueryAsync();
            var racing = Task.WhenAll(ids.Select(async tx =>
            {
                var commit = one.Post($"/v1/transactions/{tx}/commit");
                var rollback = two.Post($"/v1/transactions/{tx}/rollback");
                return (tx, Commit: await commit, Rollback: await rollback);
            }));
            await Eventually.Until(async () =>
            {
                await using var waiting = new NpgsqlCommand(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", blocker, hold);
                return (long)(await waiting.ExecuteScalarAsync())!;
            }, n => n == 2, "both brokers' writers waiting on the table");
            await hold.CommitAsync();
            var answers = await racing;

            foreach (var (tx, commit, rollback) in answers)
            {
                var statuses = new[] { commit.Status, rollback.Status }.Order().ToArray();
                Assert.True(statuses.SequenceEqual([HttpStatusCode.OK, HttpStatusCode.Conflict]), $"{tx}: commit {commit}, rollback {rollback}");
                var loser = commit.Status == HttpStatusCode.Conflict ? commit : rollback;
                Assert.Equal("transaction-conflict", loser.Code);
                var expected = commit.Status == HttpStatusCode.OK ? "committed" : "rolledBack";
                // Either broker reads the winner's state.
                Assert.Equal(expected, (await one.Transaction(tx)).Str("state"));
                Assert.Equal(expected, (await two.Transaction(tx)).Str("state"));
            }
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }

    [PostgresFact]
    public async Task A_transaction_id_sent_to_two_brokers_at_once_is_stored_once_and_the_other_gets_the_replay_answer()
    {
        var database = await cluster.CreateDatabaseAsync("dupe");
        var nodes = MultiActiveNodes.Start(database, 2);
        try
        {
            using var one = nodes[0].CreateClient();
            using var two = nodes[1].CreateClient();
            var answers = await Task.WhenAll(Enumerable.Range(0, 30).Select(async i =>
            {
                var body = new { producerGroup = "order-service", transactionId = $"dupe-{i}", body = new { i } };
                var a = one.Post("/v1/topics/orders/half-messages", body);
                var b = two.Post("/v1/topics/orders/half-messages", body);
                return (A: await a, B: await b);
            }));

            foreach (var (a, b) in answers)
            {
                var statuses = new[] { a.Status, b.Status }.Order().ToArray();
                Assert.True(statuses.SequenceEqual([HttpStatusCode.OK, HttpStatusCode.Created]), $"{a} / {b}");
                Assert.Equal(a.Json.Str("messageId"), b.Json.Str("messageId"));
            }
            await using var connection = new NpgsqlConnection(database);
            await connection.OpenAsync();
            await using var count = new NpgsqlCommand("SELECT count(*) FROM halfmsg_messages WHERE transaction_id LIKE 'dupe-%'", connection);
            Assert.Equal(30L, await count.ExecuteScalarAsync());
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }

    [PostgresFact]
    public async Task Two_brokers_batches_locking_the_same_messages_in_opposite_order_deadlock_and_the_loser_is_a_conflict_to_retry()
    {
        var database = await cluster.CreateDatabaseAsync("deadlock");
        await using var dataSource = NpgsqlDataSource.Create(database);
        PostgreSqlSchema.Migrate(dataSource);
        var ids = new HalfMsgBroker.Engine.MessageIds();
        StoredMessage Message(long at) => new() { Id = ids.Next(at), Topic = "orders", Body = new byte[2], State = MessageState.Prepared, BornAt = at, NextCheckAt = at };
        var options = new MultiActiveOptions(TimeSpan.FromSeconds(1), TimeProvider.System);
        using var a = new PostgreSqlMessageStore(dataSource, multiActive: options);
        using var b = new PostgreSqlMessageStore(dataSource, multiActive: options);
        var first = Message(1);
        var second = Message(2);
        a.RunBatch(() =>
        {
            a.Insert(first);
            a.Insert(second);
        });

        // Each batch locks one message, waits until the other batch holds the other, then asks for it.
        using var bothHoldOne = new Barrier(2);
        Exception? Run(PostgreSqlMessageStore store, Guid lockFirst, Guid lockSecond) => Record.Exception(() => store.RunBatch(() =>
        {
            var held = store.Find(lockFirst)!;
            bothHoldOne.SignalAndWait(TimeSpan.FromSeconds(30));
            var wanted = store.Find(lockSecond)!;
            held.CheckCount++;
            wanted.CheckCount++;
            store.Update(held);
            store.Update(wanted);
        }));
        var outcomes = await Task.WhenAll(
            Task.Run(() => Run(a, first.Id, second.Id)),
            Task.Run(() => Run(b, second.Id, first.Id)));

        var failed = Assert.Single(outcomes, e => e is not null);
        var conflict = Assert.IsType<StoreConflictException>(failed);
        Assert.Equal(PostgresErrorCodes.DeadlockDetected, Assert.IsType<PostgresException>(conflict.InnerException).SqlState);
        // The winner's batch is stored whole, the loser's not at all; the loser's connection still writes.
        Assert.Equal(1, a.Find(first.Id)!.CheckCount);
        Assert.Equal(1, a.Find(second.Id)!.CheckCount);
        var loser = outcomes[0] is null ? b : a;
        loser.RunBatch(() =>
        {
            var again = loser.Find(first.Id)!;
            again.CheckCount++;
            loser.Update(again);
        });
        Assert.Equal(2, a.Find(first.Id)!.CheckCount);
    }
}
