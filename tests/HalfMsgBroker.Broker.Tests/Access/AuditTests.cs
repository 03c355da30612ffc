using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Access;

/// <summary>Every change an operator wants to trace is in the audit trail, with who made it.</summary>
public sealed class AuditTests
{
    [Fact]
    public async Task Changes_are_recorded_with_the_key_name_and_paged()
    {
        await using var broker = new BrokerFactory();
        using var admin = broker.CreateClient();
        var (producerId, producerKey) = await Keys.Create(admin, "order-service", "producer", ["order-service"], null, ["orders"]);
        var (_, consumerKey) = await Keys.Create(admin, "inventory", "consumer", consumerGroups: ["inventory"]);
        using var producer = broker.CreateClient(producerKey);
        using var consumer = broker.CreateClient(consumerKey);

        Assert.Equal(HttpStatusCode.Created, (await producer.Put("/v1/producer-groups/order-service", new { checkUrl = "http://127.0.0.1:1/check" })).Status);
        await consumer.Subscribe("inventory", "orders", new { maxAttempts = 1 });
        // Dead-letter one message: received and nacked once with maxAttempts 1.
        var id = await producer.Send("orders");
        var handle = (await Eventually.Until(() => consumer.Receive("inventory", "orders"), m => m.Count == 1, "received"))[0].Str("receiptHandle");
        await consumer.Post("/v1/consumer-groups/inventory/nack", new { receiptHandle = handle, retryAfterSeconds = 0 });
        await Eventually.Until(() => consumer.DeliveryState(id, "inventory"), s => s == "deadLettered", "dead-lettered");
        Assert.Equal(1, (await consumer.Post("/v1/consumer-groups/inventory/dead-letters/redrive", new { })).Json.Int("redriven"));
        await producer.SendHalf("orders", "tx-by-admin");
        Assert.Equal(HttpStatusCode.OK, (await admin.Post("/v1/transactions/tx-by-admin/rollback")).Status);
        await producer.SendHalf("orders", "tx-by-producer");
        Assert.Equal(HttpStatusCode.OK, (await producer.Post("/v1/transactions/tx-by-producer/commit")).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await consumer.Delete("/v1/consumer-groups/inventory/subscriptions/orders")).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.Delete($"/v1/api-keys/{producerId}")).Status);

        var entries = (await admin.Get("/v1/audit?limit=1000")).Json["entries"]!.AsArray();
        var seen = entries.Select(e => (e.Str("actor"), e.Str("action"), e.Str("target"))).ToList();
        Assert.Equal(
        [
            ("admin-key", "api-key.create", producerId),
            ("admin-key", "api-key.create", seen[1].Item3),
            ("order-service", "producer-group.create", "order-service"),
            ("inventory", "subscription.create", "inventory/orders"),
            ("inventory", "dead-letters.redrive", "inventory"),
            ("admin-key", "transaction.rollback", "tx-by-admin"),
            ("inventory", "subscription.delete", "inventory/orders"),
            ("admin-key", "api-key.revoke", producerId),
        ], seen);
        Assert.Contains("checkUrl=http://127.0.0.1:1/check", entries[2].Str("detail"), StringComparison.Ordinal);
        Assert.All(entries, e => Assert.True(e!["at"]!.GetValue<DateTime>() > DateTime.UtcNow.AddMinutes(-5)));
        Assert.DoesNotContain(producerKey, entries.ToJsonString(), StringComparison.Ordinal);

        var page1 = (await admin.Get("/v1/audit?limit=3")).Json;
        Assert.Equal(3, page1["entries"]!.AsArray().Count);
        var page2 = (await admin.Get($"/v1/audit?limit=1000&after={page1.Str("next")}")).Json;
        Assert.Equal(entries.Count - 3, page2["entries"]!.AsArray().Count);
        Assert.Null(page2["next"]?.GetValue<string>());
    }

    [Fact]
    public async Task Audit_entries_older_than_the_retention_are_dropped()
    {
        await using var broker = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:Auth:AuditRetention"] = "00:00:00.300",
            ["Broker:Auth:LastUsedFlushInterval"] = "00:00:00.100",
        });
        using var admin = broker.CreateClient();
        await Keys.Create(admin, "short-lived", "admin");
        Assert.Single((await admin.Get("/v1/audit")).Json["entries"]!.AsArray());
        await Eventually.Until(async () => (await admin.Get("/v1/audit")).Json["entries"]!.AsArray().Count, n => n == 0, "audit purged", TimeSpan.FromSeconds(90));
    }
}
