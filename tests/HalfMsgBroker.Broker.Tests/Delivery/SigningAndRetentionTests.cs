using System.Security.Cryptography;
using System.Text;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Delivery;

public sealed class SigningAndRetentionTests
{
    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private static bool Verifies(TestReceiver.Received request, string secret)
    {
        var timestamp = request.Headers["HalfMsg-Timestamp"];
        var signed = Encoding.UTF8.GetBytes(timestamp + ".").Concat(request.Raw).ToArray();
        var expected = "v1=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), signed));
        return request.Headers["HalfMsg-Signature"].Split(',').Contains(expected);
    }

    [Fact]
    public async Task Check_backs_and_pushes_are_signed_with_every_secret_during_rotation()
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Signing:Secret"] = "new-secret, old-secret" });
        using var c = factory.CreateClient();
        await using var receiver = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
        await c.Put("/v1/producer-groups/pg", new { checkUrl = receiver.Url });
        var topic = Unique("t");
        await c.Subscribe("g", topic, new { push = new { url = receiver.Url } });
        var tx = Unique("tx");
        await c.SendHalf(topic, tx, group: "pg");
        await Eventually.Until(() => receiver.Requests.Count >= 2, "a check and a push");

        foreach (var request in receiver.Requests)
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            Assert.InRange(long.Parse(request.Headers["HalfMsg-Timestamp"], System.Globalization.CultureInfo.InvariantCulture), now - 60, now + 1);
            // v1 per secret for existing receivers, then v2 per secret (ReceiverSigningTests checks those).
            Assert.Equal(["v1", "v1", "v2", "v2"], request.Headers["HalfMsg-Signature"].Split(',').Select(v => v[..2]));
            Assert.True(Verifies(request, "new-secret"));
            Assert.True(Verifies(request, "old-secret"));
            Assert.False(Verifies(request, "wrong-secret"));
        }
    }

    [Fact]
    public async Task Without_a_secret_no_signature_is_sent()
    {
        await using var factory = new BrokerFactory();
        using var c = factory.CreateClient();
        await using var receiver = await TestReceiver.Answering(200);
        var topic = Unique("t");
        await c.Subscribe("g", topic, new { push = new { url = receiver.Url } });
        await c.Send(topic);
        await Eventually.Until(() => receiver.Requests.Count == 1, "a push");
        Assert.True(receiver.Requests.TryPeek(out var request));
        Assert.False(request.Headers.ContainsKey("HalfMsg-Signature"));
    }

    [Fact]
    public async Task Finished_messages_are_purged_after_retention_and_dead_letters_are_kept()
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Retention"] = "00:00:00.500" });
        using var c = factory.CreateClient();
        var topic = Unique("t");
        await c.Subscribe("g", topic, new { maxAttempts = 1 });
        var acked = await c.Send(topic);
        var rolledBackTx = Unique("tx");
        var rolledBack = await c.SendHalf(topic, rolledBackTx);
        await c.Post($"/v1/transactions/{rolledBackTx}/rollback");
        var m = Assert.Single(await c.Receive("g", topic))!;
        await c.Ack("g", m.Str("receiptHandle"));
        var dead = await c.Send(topic);
        var d = Assert.Single(await c.Receive("g", topic))!;
        await c.Post("/v1/consumer-groups/g/nack", new { receiptHandle = d.Str("receiptHandle"), retryAfterSeconds = 0 });
        await Eventually.Until(() => c.DeliveryState(dead, "g"), s => s == "deadLettered", "dead letter");

        await Eventually.Until(async () => (await c.Get($"/v1/messages/{acked}")).Status, s => s == System.Net.HttpStatusCode.NotFound, "acked message purged");
        await Eventually.Until(async () => (await c.Get($"/v1/messages/{rolledBack}")).Status, s => s == System.Net.HttpStatusCode.NotFound, "rolled-back message purged");
        Assert.Equal("deadLettered", await c.DeliveryState(dead, "g"));
        var topics = (await c.Get("/v1/topics")).Json["topics"]!.AsArray();
        Assert.Equal(1, topics.Single(t => t.Str("topic") == topic)!.Int("messageCount"));
    }
}
