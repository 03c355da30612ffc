using System.Net;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Delivery.PostgreSql;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// The review findings of multi-active mode: the two modes exclude each other on one database, a starting broker's
/// recovery keeps the rows of a subscription it had not read yet, a commit fans out to the subscriptions the database
/// holds (not to what its broker has heard), and the wake-up loop does not spin on a timer move it already saw.
/// </summary>
public sealed class MultiActiveCorrectnessTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task A_broker_without_MultiActive_waits_while_multi_active_brokers_use_the_database_and_leaves_their_rows_alone()
    {
        var database = await cluster.CreateDatabaseAsync("modes");
        var nodes = MultiActiveNodes.Start(database, 1);
        var data = Path.Combine(Path.GetTempPath(), "halfmsg-modes", Guid.NewGuid().ToString("N"));
        try
        {
            using var multi = nodes[0].CreateClient();
            await multi.Subscribe("g", "orders");
            var sent = new List<string>();
            for (var i = 0; i < 3; i++) sent.Add(await multi.Send("orders", new { i }));
            Assert.Equal(3L, await Scalar(database, "SELECT count(*) FROM halfmsg_deliveries"));

            await using var single = BrokerProcess.Launch(data,
                "--Broker:Storage:Provider=PostgreSql", $"--ConnectionStrings:HalfMsg={database}", "--Broker:Storage:PostgreSql:MultiActive=false");
            await Eventually.Until(() => single.OutputLines.Concat(single.ErrorLines).Any(l => l.Contains("waiting: multi-active brokers", StringComparison.Ordinal)),
                "the broker without MultiActive saying why it waits", TimeSpan.FromSeconds(60));
            await Assert.ThrowsAsync<HttpRequestException>(() => single.Client.GetAsync(new Uri("/health/ready", UriKind.Relative)));
            // It dropped nothing, and the multi-active broker carries on.
            Assert.Equal(3L, await Scalar(database, "SELECT count(*) FROM halfmsg_deliveries"));
            sent.Add(await multi.Send("orders", new { i = 3 }));

            // Once the last multi-active broker is gone it takes over, and delivers everything acknowledged.
            await MultiActiveNodes.DisposeAll(nodes);
            nodes.Clear();
            await single.WaitUntilReady();
            var received = new HashSet<string>();
            await Eventually.Until(async () =>
            {
                foreach (var m in await single.Client.Receive("g", "orders", max: 16, wait: 1)) received.Add(m!.Str("messageId"));
                return received.Count;
            }, n => n >= sent.Count, "every acknowledged message delivered by the broker that took over");
            Assert.Equal(sent.ToHashSet(), received);
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
            BrokerFactory.TryDelete(data);
        }
    }

    [PostgresFact]
    public async Task A_multi_active_broker_waits_not_ready_while_a_broker_without_MultiActive_holds_the_database()
    {
        var database = await cluster.CreateDatabaseAsync("modes2");
        var single = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:Storage:Provider"] = "PostgreSql",
            ["ConnectionStrings:HalfMsg"] = database,
            ["Broker:Storage:PostgreSql:MultiActive"] = "false",
        });
        var data = Path.Combine(Path.GetTempPath(), "halfmsg-modes", Guid.NewGuid().ToString("N"));
        try
        {
            using var client = single.CreateClient();
            await client.Subscribe("g", "orders");
            var sent = await client.Send("orders");

            await using var multi = BrokerProcess.Launch(data,
                "--Broker:Storage:Provider=PostgreSql", $"--ConnectionStrings:HalfMsg={database}", "--Broker:Storage:PostgreSql:MultiActive=true");
            await Eventually.Until(() => multi.OutputLines.Concat(multi.ErrorLines).Any(l => l.Contains("waiting: a broker without MultiActive", StringComparison.Ordinal)),
                "the multi-active broker saying why it waits", TimeSpan.FromSeconds(60));
            await Assert.ThrowsAsync<HttpRequestException>(() => multi.Client.GetAsync(new Uri("/health/ready", UriKind.Relative)));
            Assert.Equal(0L, await Scalar(database, "SELECT count(*) FROM halfmsg_deliveries"));

            await single.DisposeAsync();
            await multi.WaitUntilReady();
            var received = await Eventually.Until(() => multi.Client.Receive("g", "orders", wait: 1), r => r.Count == 1, "the message delivered by the multi-active broker");
            Assert.Equal(sent, received[0]!.Str("messageId"));
        }
        finally
        {
            await single.DisposeAsync();
            BrokerFactory.TryDelete(data);
        }
    }

    [PostgresFact]
    public async Task Recovery_keeps_the_rows_of_a_subscription_created_after_it_read_the_subscriptions_and_drops_real_orphans()
    {
        var database = await cluster.CreateDatabaseAsync("recovery");
        var nodes = MultiActiveNodes.Start(database, 1);
        try
        {
            using var client = nodes[0].CreateClient();
            await client.Subscribe("late", "orders");
            await client.Send("orders");
            await client.Send("orders");

            // A broker starting now read the subscriptions before "late" existed: its registry does not hold it.
            var services = nodes[0].Services;
            var stale = ActivatorUtilities.CreateInstance<DeliveryRegistry>(services);
            var recovering = ActivatorUtilities.CreateInstance<PostgreSqlLiveDeliveries>(services, stale);
            var due = services.GetRequiredService<IMessageStore>();
            var orphans = new Dictionary<string, List<Guid>>(StringComparer.Ordinal);
            recovering.Recover(due, orphans);
            Assert.Empty(orphans);

            // A subscription that is gone from the database leaves real orphans, and those are still dropped.
            await Scalar(database, "DELETE FROM halfmsg_subscriptions WHERE id = 'late' || E'\\n' || 'orders' RETURNING 1");
            recovering.Recover(due, orphans);
            Assert.Equal(2, Assert.Single(orphans).Value.Count);
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }

    [PostgresFact]
    public async Task A_commit_fans_out_to_the_subscriptions_in_the_database_not_to_those_its_broker_has_heard_of()
    {
        var database = await cluster.CreateDatabaseAsync("fanout");
        var nodes = MultiActiveNodes.Start(database, 2);
        try
        {
            using var a = nodes[0].CreateClient();
            using var b = nodes[1].CreateClient();
            const string id = "late\norders";

            // "late" made on broker b, with its announcement still on the way to a: created, its row kept, deleted
            // (which a hears), then put back without a word, as b's creation is before a hears of it.
            await b.Subscribe("late", "orders");
            var doc = (byte[])(await Scalar(database, "SELECT doc FROM halfmsg_subscriptions WHERE id = 'late' || E'\\n' || 'orders'"))!;
            Assert.Equal(HttpStatusCode.NoContent, (await b.Delete("/v1/consumer-groups/late/subscriptions/orders")).Status);
            await Eventually.Until(() => a.Get("/v1/consumer-groups/late"), r => r.Status == HttpStatusCode.NotFound, "broker a to hear of the deletion");
            await Execute(database, "INSERT INTO halfmsg_subscriptions (id, doc) VALUES ($1, $2)", id, doc);

            // Committed through a after the subscription was committed: both are the new subscription's.
            var half = await a.SendHalf("orders", "tx-late");
            Assert.Equal(HttpStatusCode.OK, (await a.Post("/v1/transactions/tx-late/commit")).Status);
            var plain = await a.Send("orders");

            // The announcement arrives; b (and a) know the subscription, and b hands out both.
            await Execute(database, "SELECT pg_notify($1, $2)", ConfigChange.Channel, ConfigChange.Subscription("late", "orders"));
            await Eventually.Until(() => a.Get("/v1/consumer-groups/late"), r => r.Status == HttpStatusCode.OK, "broker a to hear of the subscription");
            var received = new HashSet<string>();
            await Eventually.Until(async () =>
            {
                foreach (var m in await b.Receive("late", "orders", wait: 1)) received.Add(m!.Str("messageId"));
                return received.Count;
            }, n => n >= 2, "both messages delivered to the subscription");
            Assert.Equal(new HashSet<string> { half, plain }, received);

            // Deleted without a word: a still has it in memory, but a message sent now gets no delivery for it.
            await Execute(database, "DELETE FROM halfmsg_subscriptions WHERE id = $1", id);
            var after = await a.Send("orders");
            Assert.Equal(0L, await Scalar(database, $"SELECT count(*) FROM halfmsg_deliveries WHERE message_id = '{after}'"));
            Assert.Null(await a.DeliveryState(after, "late"));
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }

    [PostgresFact]
    public async Task A_timer_move_the_wakeup_loop_already_saw_does_not_make_it_go_round_again()
    {
        var database = await cluster.CreateDatabaseAsync("wakeups");
        // No safety poll within the test, so only timer moves turn the loop.
        var nodes = MultiActiveNodes.Start(database, 1, new Dictionary<string, string?> { ["Broker:Storage:PostgreSql:DeliverySafetyPoll"] = "01:00:00" });
        try
        {
            using var client = nodes[0].CreateClient();
            var wakeups = nodes[0].Services.GetRequiredService<DeliveryWakeups>();
            await Eventually.Until(() => wakeups.Turns >= 1, "the wake-up loop to start");

            var before = wakeups.Turns;
            wakeups.DueAt(DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeMilliseconds());
            await Eventually.Until(() => wakeups.Turns > before, "the loop to take the move");
            var woke = wakeups.Turns;

            // Requests give the loop every chance to go round; a spin (waiting on the move it already took) goes round
            // without end, on a thread of its own, until the timer is due an hour from now.
            for (var i = 0; i < 50; i++) Assert.Equal(HttpStatusCode.OK, (await client.Get("/health/ready")).Status);
            Assert.InRange(wakeups.Turns - woke, 0, 1);
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }

    private static async Task<object?> Scalar(string database, string sql)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    private static async Task Execute(string database, string sql, params object[] parameters)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var p in parameters) command.Parameters.Add(new NpgsqlParameter { Value = p });
        await command.ExecuteNonQueryAsync();
    }
}
