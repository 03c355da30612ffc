using System.Text.Json.Nodes;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Delivery;

/// <summary>
/// A restart brings back every open delivery without its body (memory holds ids, groups, attempts and
/// due times), and a delivery handed out afterwards still carries the whole message, read back then.
/// </summary>
public sealed class RecoveryTests : IDisposable
{
    private const string Trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-recovery-tests", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_dataPath);

    private BrokerFactory Broker() => new(new Dictionary<string, string?> { ["Broker:DataPath"] = _dataPath });

    [InMemoryDeliveriesFact]
    public async Task Open_deliveries_come_back_without_bodies_and_are_handed_out_whole_after_a_restart()
    {
        await using var pushTarget = await TestReceiver.Answering(503);
        string id;
        await using (var before = Broker())
        {
            var c = before.CreateClient();
            await c.Subscribe("pull-group", "orders");
            var push = new JsonObject { ["maxAttempts"] = 1000, ["push"] = new JsonObject { ["url"] = pushTarget.Url, ["timeoutMs"] = 2000 } };
            await c.Subscribe("push-group", "orders", push);
            var sent = await c.Post("/v1/topics/orders/messages",
                new { body = new { orderId = 7, note = "whole" }, tag = "created", keys = new[] { "order-7", "customer-3" }, properties = new Dictionary<string, string> { ["region"] = "eu" } },
                new Dictionary<string, string> { ["traceparent"] = Trace });
            id = sent.Json.Str("messageId");
            // Handed out before the restart: received and never acked, and pushed to an endpoint that fails.
            Assert.Single(await c.Receive("pull-group", "orders", invisible: 3600));
            await Eventually.Until(() => pushTarget.Requests.Count >= 1, "a failed push before the restart");
            Assert.True(before.Services.GetRequiredService<DeliveryRegistry>().Budget.Used > 0, "a message sent at run time carries its body in memory");
        }

        pushTarget.Respond((_, _) => Task.FromResult((200, (string?)null)));
        var pushesBefore = pushTarget.Requests.Count;
        await using var after = Broker();
        var client = after.CreateClient();
        var registry = after.Services.GetRequiredService<DeliveryRegistry>();
        Assert.Equal(0, registry.Budget.Used);
        Assert.NotNull(registry.Find("pull-group", "orders")!.Peek(Guid.Parse(id)));

        var received = Assert.Single(await client.Receive("pull-group", "orders", wait: 5))!;
        Assert.Equal(id, received.Str("messageId"));
        Assert.Equal(7, received["body"]!.Int("orderId"));
        Assert.Equal("whole", received["body"]!.Str("note"));
        Assert.Equal("created", received.Str("tag"));
        Assert.Equal(["order-7", "customer-3"], received["keys"]!.AsArray().Select(k => k!.GetValue<string>()));
        Assert.Equal("eu", received["properties"]!.Str("region"));
        Assert.Equal(1, received.Int("attempt")); // a pull hand-out is counted in memory only: lost with the restart
        Assert.Equal(1, (await client.Ack("pull-group", received.Str("receiptHandle"))).Json.Int("acked"));

        await Eventually.Until(() => client.DeliveryState(id, "push-group"), s => s == "acked", "the push after the restart");
        var pushed = pushTarget.Requests.Skip(pushesBefore).Last();
        Assert.Equal(Trace, pushed.Headers["traceparent"]);
        Assert.Equal(7, pushed.Body["body"]!.Int("orderId"));
        Assert.Equal("eu", pushed.Body["properties"]!.Str("region"));
    }
}
