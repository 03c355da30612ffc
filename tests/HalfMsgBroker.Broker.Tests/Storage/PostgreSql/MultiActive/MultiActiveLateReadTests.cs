using System.Diagnostics;
using System.Net;
using HalfMsgBroker.Access;
using HalfMsgBroker.Cluster;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// A user behind a load balancer creates something through one broker, and the next request lands on a broker that has
/// not heard of it yet (its reloads held, <see cref="LateHearing"/>): that broker reads the store on a miss and serves it,
/// instead of answering 404 or 401. Known things stay pure memory reads, and unknown API keys cost bounded reads.
/// </summary>
public sealed class MultiActiveLateReadTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task A_receive_and_ack_through_a_broker_that_has_not_heard_of_the_subscription_read_it_from_the_store_once()
    {
        await LateHearing.OnTwoBrokers(cluster, "late_receive", async (database, nodes, one, two) =>
        {
            var deaf = LateHearing.SyncOf(nodes[1]);
            var stored = StoredOf(nodes[1]);
            await deaf.HoldAsync();
            var before = stored.StoreReads;

            await one.Subscribe("billing", "orders");
            Assert.Empty(await two.Receive("billing", "orders")); // not 404: read from the store
            Assert.Equal(before + 1, stored.StoreReads);

            var id = await one.Send("orders");
            var message = Assert.Single(await two.Receive("billing", "orders", wait: 10));
            Assert.Equal(id, message.Str("messageId"));
            var acked = await two.Ack("billing", message.Str("receiptHandle"));
            Assert.Equal(HttpStatusCode.OK, acked.Status);
            Assert.Equal(1, acked.Json.Int("acked"));
            Assert.Equal("acked", await one.DeliveryState(id, "billing"));
            // Known now: every later request of it is answered from memory.
            Assert.Equal(before + 1, stored.StoreReads);

            // A real absence: one store read, then 404.
            var missing = await two.Post("/v1/consumer-groups/billing/topics/nothing/receive", new { waitSeconds = 0 });
            Assert.Equal(HttpStatusCode.NotFound, missing.Status);
            Assert.Equal("subscription-not-found", missing.Code);
            Assert.Equal(before + 2, stored.StoreReads);
            deaf.Release();
        });
    }

    [PostgresFact]
    public async Task A_nack_through_a_broker_that_has_not_heard_of_the_subscription_is_stored()
    {
        await LateHearing.OnTwoBrokers(cluster, "late_nack", async (database, nodes, one, two) =>
        {
            var deaf = LateHearing.SyncOf(nodes[1]);
            await deaf.HoldAsync();
            await one.Subscribe("billing", "orders");
            // Delayed: its rows are announced as due later, so the second broker does not adopt the subscription on hearing of them.
            await one.Post("/v1/topics/orders/messages", new { body = new { n = 1 }, delaySeconds = 1 });
            var message = Assert.Single(await one.Receive("billing", "orders", wait: 10));
            Assert.Null(nodes[1].Services.GetRequiredService<DeliveryRegistry>().Find("billing", "orders"));

            var nacked = await two.Post("/v1/consumer-groups/billing/nack", new { receiptHandle = message.Str("receiptHandle"), retryAfterSeconds = 0 });
            Assert.Equal(HttpStatusCode.OK, nacked.Status);
            Assert.Equal("pending", nacked.Json.Str("state"));
            var again = Assert.Single(await one.Receive("billing", "orders", wait: 10));
            Assert.Equal(message.Str("messageId"), again.Str("messageId"));
            Assert.Equal(2, again.Int("attempt"));
            deaf.Release();
        });
    }

    [PostgresFact]
    public async Task A_consumer_group_read_through_a_broker_that_has_not_heard_of_its_subscription_lists_it()
    {
        await LateHearing.OnTwoBrokers(cluster, "late_get", async (database, nodes, one, two) =>
        {
            var deaf = LateHearing.SyncOf(nodes[1]);
            await deaf.HoldAsync();
            var created = await one.Put("/v1/consumer-groups/billing/subscriptions/orders", new { maxAttempts = 7 });
            Assert.Equal(HttpStatusCode.Created, created.Status);

            var group = await two.Get("/v1/consumer-groups/billing");
            Assert.Equal(HttpStatusCode.OK, group.Status);
            var subscription = Assert.Single(group.Json["subscriptions"]!.AsArray());
            Assert.Equal("orders", subscription.Str("topic"));
            Assert.Equal(7, subscription.Int("maxAttempts"));
            Assert.Equal(created.Json.Str("createdAt"), subscription.Str("createdAt"));
            Assert.Equal(HttpStatusCode.NotFound, (await two.Get("/v1/consumer-groups/nobody")).Status);
            deaf.Release();
        });
    }

    [PostgresFact]
    public async Task Retry_now_replay_and_a_consumer_keys_message_lookup_through_a_broker_that_has_not_heard_find_the_subscription()
    {
        await LateHearing.OnTwoBrokers(cluster, "late_admin", async (database, nodes, one, two) =>
        {
            var deaf = LateHearing.SyncOf(nodes[1]);
            await deaf.HoldAsync();
            var from = DateTime.UtcNow.AddMinutes(-1).ToString("O");
            foreach (var (group, topic) in new[] { ("billing", "retried"), ("billing", "replayed"), ("audit", "payments") }) await one.Subscribe(group, topic);
            // Delayed: announced as due later, so the second broker does not adopt the subscription on hearing of the row.
            var sent = await one.Post("/v1/topics/payments/messages", new { body = new { n = 1 }, delaySeconds = 600 });
            var consumer = await one.Post("/v1/api-keys", new { name = "auditor", role = "consumer", consumerGroups = new[] { "audit" } });

            var retried = await two.Post("/v1/consumer-groups/billing/subscriptions/retried/retry-now", new { });
            Assert.Equal(HttpStatusCode.OK, retried.Status);
            var replayed = await two.Post("/v1/consumer-groups/billing/subscriptions/replayed/replay", new { from });
            Assert.Equal(HttpStatusCode.OK, replayed.Status);
            using var auditor = nodes[1].CreateClient(consumer.Json.Str("key"));
            var lookup = await auditor.Get($"/v1/messages/{sent.Json.Str("messageId")}");
            Assert.Equal(HttpStatusCode.OK, lookup.Status);
            deaf.Release();
        });
    }

    [PostgresFact]
    public async Task Updating_a_subscription_through_a_broker_that_has_not_heard_of_it_takes_no_new_place_in_the_quota()
    {
        await LateHearing.OnTwoBrokers(cluster, "late_quota", async (database, nodes, one, two) =>
        {
            var registry = nodes[1].Services.GetRequiredService<DeliveryRegistry>();
            await one.Subscribe("billing", "first");
            await one.Subscribe("billing", "second");
            await Eventually.Until(() => registry.Find("billing", "first") is not null && registry.Find("billing", "second") is not null, "both subscriptions heard by the second broker");

            // The second broker still counts "first" (it has not heard of its deletion), so it holds two, its limit.
            var deaf = LateHearing.SyncOf(nodes[1]);
            await deaf.HoldAsync();
            Assert.Equal(HttpStatusCode.NoContent, (await one.Delete("/v1/consumer-groups/billing/subscriptions/first")).Status);
            Assert.Equal(HttpStatusCode.Created, (await one.Put("/v1/consumer-groups/billing/subscriptions/third", new { })).Status);

            var updated = await two.Put("/v1/consumer-groups/billing/subscriptions/third", new { maxAttempts = 9 });
            Assert.Equal(HttpStatusCode.OK, updated.Status);
            Assert.Equal(9, updated.Json.Int("maxAttempts"));
            // A new one is still refused there.
            Assert.Equal(HttpStatusCode.TooManyRequests, (await two.Put("/v1/consumer-groups/billing/subscriptions/fourth", new { })).Status);
            deaf.Release();
        }, new Dictionary<string, string?> { ["Broker:Quotas:MaxSubscriptions"] = "2" });
    }

    [PostgresFact]
    public async Task A_broker_that_has_not_heard_of_a_push_subscription_pushes_its_deliveries_once_alone()
    {
        await using var receiver = await TestReceiver.Answering(200);
        await LateHearing.OnTwoBrokers(cluster, "late_push", async (database, nodes, one, two) =>
        {
            var deaf = LateHearing.SyncOf(nodes[1]);
            await deaf.HoldAsync();
            await one.Subscribe("billing", "orders", new { push = new { url = receiver.Url } });
            await nodes[0].DisposeAsync(); // the broker that knows it is gone

            var id = await two.Send("orders");
            await Eventually.Until(() => receiver.Requests.Any(r => r.Body.Str("messageId") == id), "the delivery pushed by the broker that had not heard");
            await Eventually.Until(() => two.DeliveryState(id, "billing"), state => state == "acked", "the push acked");
            deaf.Release();
        });
    }

    [PostgresFact]
    public async Task An_api_key_created_through_another_broker_is_accepted_and_a_revoked_one_stays_refused()
    {
        await LateHearing.OnTwoBrokers(cluster, "late_keys", async (database, nodes, one, two) =>
        {
            var deaf = LateHearing.SyncOf(nodes[1]);
            var reads = nodes[1].Services.GetRequiredService<UnknownKeyReads>();
            await deaf.HoldAsync();

            var fresh = await one.Post("/v1/api-keys", new { name = "fresh", role = "admin" });
            using (var freshOnTwo = nodes[1].CreateClient(fresh.Json.Str("key")))
            {
                Assert.Equal(HttpStatusCode.OK, (await freshOnTwo.Get("/v1/api-keys")).Status);
                Assert.Equal(1, reads.Reads);
                Assert.Equal(HttpStatusCode.OK, (await freshOnTwo.Get("/v1/api-keys")).Status);
                Assert.Equal(1, reads.Reads); // known now
            }

            // Created and revoked before the second broker heard of either: its read finds the revocation.
            var revoked = await one.Post("/v1/api-keys", new { name = "revoked", role = "admin" });
            Assert.Equal(HttpStatusCode.NoContent, (await one.Delete($"/v1/api-keys/{revoked.Json.Str("id")}")).Status);
            using var revokedOnTwo = nodes[1].CreateClient(revoked.Json.Str("key"));
            Assert.Equal(HttpStatusCode.Unauthorized, (await revokedOnTwo.Get("/v1/api-keys")).Status);
            Assert.Equal(2, reads.Reads);
            // Retried, it is refused from memory: a client repeating a bad key does not spend the budget.
            for (var i = 0; i < 10; i++) Assert.Equal(HttpStatusCode.Unauthorized, (await revokedOnTwo.Get("/v1/api-keys")).Status);
            Assert.Equal(2, reads.Reads);
            deaf.Release();
        });
    }

    [PostgresFact]
    public async Task A_flood_of_random_keys_costs_at_most_the_read_budget()
    {
        const int perSecond = 2;
        await LateHearing.OnTwoBrokers(cluster, "late_flood", async (database, nodes, one, two) =>
        {
            var reads = nodes[1].Services.GetRequiredService<UnknownKeyReads>();
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < 40; i++)
            {
                using var random = nodes[1].CreateClient(ApiKey.NewSecret());
                Assert.Equal(HttpStatusCode.Unauthorized, (await random.Get("/v1/api-keys")).Status);
            }
            var elapsed = clock.Elapsed.TotalSeconds;
            // A second's worth to start with, then the refill: never more, however fast the keys come.
            Assert.InRange(reads.Reads, 1, perSecond + (long)Math.Ceiling(elapsed * perSecond));
        }, new Dictionary<string, string?> { ["Broker:Auth:UnknownKeyReadsPerSecond"] = $"{perSecond}" });
    }

    [PostgresFact]
    public async Task A_producer_group_registered_through_another_broker_is_read_and_checked_by_one_that_has_not_heard()
    {
        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
        await LateHearing.OnTwoBrokers(cluster, "late_producer", async (database, nodes, one, two) =>
        {
            var deaf = LateHearing.SyncOf(nodes[1]);
            await deaf.HoldAsync();
            Assert.Equal(HttpStatusCode.Created, (await one.Put("/v1/producer-groups/order-service", new { checkUrl = checker.Url })).Status);
            await nodes[0].DisposeAsync(); // only the broker that has not heard can run the check

            Assert.Equal(checker.Url, (await two.Get("/v1/producer-groups/order-service")).Json.Str("checkUrl"));
            await two.SendHalf("orders", "late-tx");
            await Eventually.Until(() => two.Transaction("late-tx"), t => t.Str("state") == "committed", "the transaction committed by its check-back");
            Assert.Contains(checker.Requests, r => r.Body.Str("transactionId") == "late-tx");
            deaf.Release();
        });
    }

    [PostgresFact]
    public async Task A_subscription_deleted_through_another_broker_is_served_until_heard_and_gets_no_rows_back()
    {
        await LateHearing.OnTwoBrokers(cluster, "late_deleted", async (database, nodes, one, two) =>
        {
            var registry = nodes[1].Services.GetRequiredService<DeliveryRegistry>();
            await one.Subscribe("billing", "orders");
            await Eventually.Until(() => registry.Find("billing", "orders") is not null, "the subscription heard by the second broker");
            var id = await one.Send("orders");
            var leased = Assert.Single(await two.Receive("billing", "orders", wait: 10));

            var deaf = LateHearing.SyncOf(nodes[1]);
            await deaf.HoldAsync();
            Assert.Equal(HttpStatusCode.NoContent, (await one.Delete("/v1/consumer-groups/billing/subscriptions/orders")).Status);
            await Eventually.Until(async () => await RowsOf(database, "billing"), n => n == 0, "the deleted subscription's rows dropped");

            // Still served (not heard of the deletion), but nothing comes back to life.
            Assert.Empty(await two.Receive("billing", "orders"));
            var nacked = await two.Post("/v1/consumer-groups/billing/nack", new { receiptHandle = leased.Str("receiptHandle"), retryAfterSeconds = 0 });
            Assert.Equal(HttpStatusCode.Conflict, nacked.Status);
            Assert.Equal(0L, await RowsOf(database, "billing"));
            Assert.Null(await two.DeliveryState(id, "billing"));

            deaf.Release();
            await Eventually.Until(() => two.Post("/v1/consumer-groups/billing/topics/orders/receive", new { waitSeconds = 0 }),
                a => a.Status == HttpStatusCode.NotFound, "the deletion heard");
        });
    }

    private static StoredSubscriptions StoredOf(BrokerFactory node) => node.Services.GetRequiredService<StoredSubscriptions>();

    private static async Task<long> RowsOf(string database, string group)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM halfmsg_deliveries WHERE consumer_group = $1", connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = group });
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
