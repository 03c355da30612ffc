using System.Net;
using HalfMsgBroker.Access;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>The whole broker in-process on the PostgreSQL provider: the API, a restart, PostgreSQL going away, the lock.</summary>
public sealed class PostgreSqlBrokerTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    private static Dictionary<string, string?> OnPostgres(string connectionString, params (string Key, string Value)[] more)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Broker:Storage:Provider"] = "PostgreSql",
            ["ConnectionStrings:HalfMsg"] = connectionString,
        };
        foreach (var (key, value) in more) settings[key] = value;
        return settings;
    }

    [PostgresFact]
    public async Task Sends_commits_deliveries_and_check_backs_live_in_PostgreSQL_and_survive_a_restart()
    {
        var database = await cluster.CreateDatabaseAsync("api");
        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
        string sent, committed, checkedBack, keyId;
        await using (var first = new BrokerFactory(OnPostgres(database)))
        {
            Assert.IsType<PostgreSqlMessageStore>(first.Services.GetRequiredService<IMessageStore>());
            Assert.IsType<PostgreSqlAccessStore>(first.Services.GetRequiredService<IAccessStore>());
            var c = first.CreateClient();
            Assert.Equal(HttpStatusCode.Created, (await c.Put("/v1/producer-groups/pg", new { checkUrl = checker.Url })).Status);
            await c.Subscribe("g", "orders");
            keyId = (await HalfMsgBroker.Tests.Access.Keys.Create(c, "reader", "consumer", consumerGroups: ["g"])).Id;

            sent = await c.Send("orders", new { n = 1 });
            committed = await c.SendHalf("orders", "tx-commit", group: "pg");
            Assert.Equal(HttpStatusCode.OK, (await c.Post("/v1/transactions/tx-commit/commit")).Status);
            checkedBack = await c.SendHalf("orders", "tx-check", group: "pg");
            var resolved = await Eventually.Until(() => c.Transaction("tx-check"), t => t.Str("state") != "prepared", "the check-back's answer");
            Assert.Equal(("committed", "check"), (resolved.Str("state"), resolved.Str("resolvedBy")));
            Assert.NotEmpty(checker.Requests);

            var received = await Eventually.Until(async () => (await c.Receive("g", "orders", wait: 1)).Select(m => m!).ToList(), _ => true, "a receive");
            var all = new List<System.Text.Json.Nodes.JsonNode>(received);
            while (all.Count < 3) all.AddRange((await c.Receive("g", "orders", wait: 1)).Select(m => m!));
            Assert.Equal(new[] { sent, committed, checkedBack }.Order(), all.Select(m => m.Str("messageId")).Order());
            var handle = all.Single(m => m.Str("messageId") == sent).Str("receiptHandle");
            Assert.Equal(HttpStatusCode.OK, (await c.Ack("g", handle)).Status);
            Assert.Equal("acked", await c.DeliveryState(sent, "g"));
        }

        // Another broker process on the same database finds everything: state, deliveries still owed, keys, the receipt key.
        await using var second = new BrokerFactory(OnPostgres(database));
        var c2 = second.CreateClient();
        Assert.Equal("committed", (await c2.Transaction("tx-commit")).Str("state"));
        Assert.Equal("check", (await c2.Transaction("tx-check")).Str("resolvedBy"));
        Assert.Equal("acked", await c2.DeliveryState(sent, "g"));
        Assert.Contains(keyId, (await c2.Get("/v1/api-keys")).Raw, StringComparison.Ordinal);
        var again = new List<System.Text.Json.Nodes.JsonNode>();
        await Eventually.Until(async () =>
        {
            again.AddRange((await c2.Receive("g", "orders", wait: 1)).Select(m => m!));
            return again.Count;
        }, n => n >= 2, "the unacked deliveries again");
        Assert.Equal(new[] { committed, checkedBack }.Order(), again.Select(m => m.Str("messageId")).Order());
        Assert.Equal(HttpStatusCode.OK, (await c2.Ack("g", again.Select(m => m.Str("receiptHandle")).ToArray())).Status);
        Assert.Equal("acked", await c2.DeliveryState(committed, "g"));
    }

    [PostgresFact]
    public async Task Concurrent_retries_store_one_message_each_and_spare_their_neighbours()
    {
        // The database's unique index refuses a duplicate at the group commit; the writer then runs the batch's commands one by one.
        await using var factory = new BrokerFactory(OnPostgres(await cluster.CreateDatabaseAsync("race")));
        var c = factory.CreateClient();
        var halves = Enumerable.Range(0, 12).Select(_ => c.Post("/v1/topics/race/half-messages",
            new { producerGroup = "order-service", transactionId = "tx-race", body = new { orderId = 1 } }));
        var keyed = Enumerable.Range(0, 12).Select(_ => c.Post("/v1/topics/race/messages", new { body = new { n = 1 } },
            new Dictionary<string, string> { ["Idempotency-Key"] = "key-race" }));
        var innocent = Enumerable.Range(0, 12).Select(i => c.Post("/v1/topics/race/messages", new { body = new { i } }));
        var answers = await Task.WhenAll(halves.Concat(keyed).Concat(innocent));

        foreach (var group in new[] { answers.Take(12).ToList(), answers.Skip(12).Take(12).ToList() })
        {
            Assert.Single(group, a => a.Status == HttpStatusCode.Created);
            Assert.All(group, a => Assert.True(a.Status is HttpStatusCode.Created or HttpStatusCode.OK, a.ToString()));
            Assert.Single(group.Select(a => a.Json.Str("messageId")).Distinct());
        }
        Assert.All(answers.Skip(24), a => Assert.Equal(HttpStatusCode.Created, a.Status));
        var topics = (await c.Get("/v1/topics")).Json["topics"]!.AsArray();
        Assert.Equal(14, topics.Single(t => t.Str("topic") == "race")!.Int("messageCount"));
    }

    [Fact]
    public void Without_a_connection_string_the_PostgreSQL_provider_refuses_to_start_and_says_what_is_missing()
    {
        using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Storage:Provider"] = "PostgreSql" });
        var refused = Record.Exception(() => factory.CreateClient());
        Assert.NotNull(refused);
        Assert.Contains("Broker:Storage:Provider=PostgreSql needs the connection string ConnectionStrings:HalfMsg", refused.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Broker:Storage:PostgreSql:LockCheckInterval", "00:00:00")]
    [InlineData("Broker:Storage:PostgreSql:ReadyTimeout", "00:00:00")]
    [InlineData("Broker:Storage:PostgreSql:ClockCheckInterval", "00:00:00")]
    [InlineData("Broker:Storage:PostgreSql:MaxClockOffset", "00:00:00")]
    public void A_lock_check_interval_ready_timeout_or_clock_setting_that_is_not_positive_refuses_the_start(string key, string value)
    {
        using var factory = new BrokerFactory(OnPostgres("Host=127.0.0.1;Database=unused", (key, value)));
        var refused = Record.Exception(() => factory.CreateClient());
        Assert.NotNull(refused);
        Assert.True(refused.ToString().Contains("Broker:Storage:PostgreSql:LockCheckInterval, ReadyTimeout, SweepLease, ClockCheckInterval and MaxClockOffset must be > 0", StringComparison.Ordinal), refused.ToString());
    }

    [PostgresFact]
    public async Task When_PostgreSQL_drops_the_writer_a_write_answers_503_the_broker_stops_and_a_restart_has_everything_acknowledged()
    {
        var database = new NpgsqlConnectionStringBuilder(await cluster.CreateDatabaseAsync("down"));
        await using var proxy = TcpProxy.Start(database.Port);
        database.Port = proxy.Port;
        database.Timeout = 3;
        database.CommandTimeout = 5;
        var acknowledged = new List<string>();
        // The lock connection breaks with the others; its check is slowed down here so only the writer's failure stops the broker.
        await using (var factory = new BrokerFactory(OnPostgres(database.ConnectionString,
            ("Broker:Storage:PostgreSql:LockCheckInterval", "00:10:00"), ("Broker:Storage:PostgreSql:ReadyTimeout", "00:00:01"))))
        {
            var c = factory.CreateClient();
            await c.Subscribe("g", "orders");
            for (var i = 0; i < 5; i++) acknowledged.Add(await c.Send("orders", new { i }));
            // Read before the cut: a stopped host disposes its services.
            var lifetime = factory.Services.GetRequiredService<IHostApplicationLifetime>();
            var readiness = factory.Services.GetRequiredService<PostgreSqlReadiness>();

            proxy.Cut();
            var refused = await c.Post("/v1/topics/orders/messages", new { body = new { i = 99 } });
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.Status);
            Assert.Equal("storage-unavailable", refused.Code);
            Assert.Contains("unknown", refused.Json.Str("detail"), StringComparison.Ordinal);
            Assert.DoesNotContain("nothing was changed", refused.Json.Str("detail"), StringComparison.Ordinal);
            await Eventually.Until(() => lifetime.ApplicationStopping.IsCancellationRequested, "the host stopping");
            Assert.Contains("outcome is unknown", await readiness.ProblemAsync(CancellationToken.None), StringComparison.Ordinal);
            proxy.Restore();
        }

        await using var restarted = new BrokerFactory(OnPostgres(database.ConnectionString));
        var c2 = restarted.CreateClient();
        acknowledged.Add(await c2.Send("orders", new { i = 5 }));
        foreach (var id in acknowledged) Assert.Equal(HttpStatusCode.OK, (await c2.Get($"/v1/messages/{id}")).Status);
    }

    [PostgresFact]
    public async Task A_broker_that_loses_its_lock_connection_stops_taking_writes_and_stops()
    {
        var database = await cluster.CreateDatabaseAsync("lock");
        await using var factory = new BrokerFactory(OnPostgres(database, ("Broker:Storage:PostgreSql:LockCheckInterval", "00:00:00.100")));
        var c = factory.CreateClient();
        await c.Send("orders");
        Assert.Equal(HttpStatusCode.OK, (await c.Get("/health/ready")).Status);
        var store = factory.Services.GetRequiredService<IMessageStore>();
        var readiness = factory.Services.GetRequiredService<PostgreSqlReadiness>();
        // Read before the lock goes: a stopped host disposes its services.
        var lifetime = factory.Services.GetRequiredService<IHostApplicationLifetime>();

        await using (var admin = new NpgsqlConnection(database))
        {
            await admin.OpenAsync();
            await using var kill = new NpgsqlCommand(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'halfmsg-broker-lock' AND datname = current_database()", admin);
            Assert.Equal(1L, await kill.ExecuteScalarAsync());
        }

        await Eventually.Until(() => lifetime.ApplicationStopping.IsCancellationRequested, "the host stopping");
        Assert.Contains("database lock is gone", await readiness.ProblemAsync(CancellationToken.None), StringComparison.Ordinal);
        // No batch is written once the lock is gone (another broker may be active); the API maps this to 503 storage-unavailable.
        var refused = Assert.Throws<StoreUnavailableException>(() => store.RunBatch(() => store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 1 })));
        Assert.Contains("lost its database lock", refused.Message, StringComparison.Ordinal);
    }
}
