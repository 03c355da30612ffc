using System.Net;
using System.Text.Json.Nodes;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.OperatorConsole;

/// <summary>
/// Pausing a push subscription through the API, against real receivers on loopback: nothing is pushed
/// while paused (a second, unpaused subscription on the same topic is the clock that proves dispatch had
/// its chance), the deliveries wait, resume pushes them, and the pause is stored across a restart.
/// </summary>
public sealed class PauseResumeTests : IDisposable
{
    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-pause-tests", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_dataPath);

    private BrokerFactory Broker() => new(new Dictionary<string, string?> { ["Broker:DataPath"] = _dataPath });

    private static JsonObject Push(TestReceiver receiver) =>
        new() { ["push"] = new JsonObject { ["url"] = receiver.Url, ["timeoutMs"] = 2000 } };

    private static async Task<JsonNode> Subscription(HttpClient c, string group, string topic) =>
        (await c.Get($"/v1/consumer-groups/{group}")).Json["subscriptions"]!.AsArray().Single(s => s.Str("topic") == topic)!;

    [Fact]
    public async Task Nothing_is_pushed_while_paused_and_resume_pushes_what_waited()
    {
        await using var paused = await TestReceiver.Answering(200);
        await using var clock = await TestReceiver.Answering(200);
        await using var broker = Broker();
        var c = broker.CreateClient();
        await c.Subscribe("held", "orders", Push(paused));
        await c.Subscribe("clock", "orders", Push(clock));
        await c.Send("orders");
        await Eventually.Until(() => paused.Requests.Count == 1 && clock.Requests.Count == 1, "the first message pushed to both");

        var pause = await c.Post("/v1/consumer-groups/held/subscriptions/orders/pause", new { reason = "receiver being redeployed" });
        Assert.Equal(HttpStatusCode.OK, pause.Status);
        Assert.True(pause.Json["paused"]!.GetValue<bool>());

        var ids = new[] { await c.Send("orders"), await c.Send("orders"), await c.Send("orders") };
        await Eventually.Until(() => clock.Requests.Count == 4, "the unpaused subscription got all three");
        await Eventually.Until(() => Task.WhenAll(ids.Select(id => c.DeliveryState(id, "clock"))), s => s.All(x => x == "acked"), "clock acked");
        Assert.Single(paused.Requests);
        var held = await Subscription(c, "held", "orders");
        Assert.True(held["paused"]!.GetValue<bool>());
        Assert.Equal(3, held["counts"].Int("ready"));
        Assert.All(await Task.WhenAll(ids.Select(id => c.DeliveryState(id, "held"))), s => Assert.Equal("pending", s));

        var resume = await c.Post("/v1/consumer-groups/held/subscriptions/orders/resume", new { reason = "redeployed" });
        Assert.Equal(HttpStatusCode.OK, resume.Status);
        Assert.False(resume.Json["paused"]!.GetValue<bool>());
        await Eventually.Until(() => Task.WhenAll(ids.Select(id => c.DeliveryState(id, "held"))), s => s.All(x => x == "acked"), "held messages pushed after resume");
        Assert.Equal(4, paused.Requests.Count);

        var audit = (await c.Get("/v1/audit?target=held/orders")).Json["entries"]!.AsArray();
        Assert.Contains(audit, e => e.Str("action") == "subscription.pause" && e.Str("detail") == "reason=receiver being redeployed");
        Assert.Contains(audit, e => e.Str("action") == "subscription.resume" && e.Str("detail") == "reason=redeployed");
    }

    [Fact]
    public async Task A_paused_subscription_stays_paused_after_a_restart_and_a_re_registration()
    {
        await using var receiver = await TestReceiver.Answering(200);
        string id;
        await using (var before = Broker())
        {
            var c = before.CreateClient();
            await c.Subscribe("held", "orders", Push(receiver));
            await c.Subscribe("clock", "orders");
            Assert.Equal(HttpStatusCode.OK, (await c.Post("/v1/consumer-groups/held/subscriptions/orders/pause")).Status);
            id = await c.Send("orders");
        }

        await using var after = Broker();
        var client = after.CreateClient();
        // A client re-registering its subscription (same PUT) does not undo an operator's pause.
        await client.Subscribe("held", "orders", Push(receiver));
        var held = await Subscription(client, "held", "orders");
        Assert.True(held["paused"]!.GetValue<bool>());
        // The pull subscription beside it is served at once after the restart: the broker is running, the push is held.
        Assert.Single(await client.Receive("clock", "orders", wait: 5));
        Assert.Equal(1, (await Subscription(client, "held", "orders"))["counts"].Int("ready"));
        Assert.Empty(receiver.Requests);

        Assert.Equal(HttpStatusCode.OK, (await client.Post("/v1/consumer-groups/held/subscriptions/orders/resume")).Status);
        await Eventually.Until(() => client.DeliveryState(id, "held"), s => s == "acked", "pushed after resume");
        Assert.Single(receiver.Requests);
    }

    [Fact]
    public async Task Pausing_answers_what_cannot_be_paused_and_is_idempotent()
    {
        await using var receiver = await TestReceiver.Answering(200);
        await using var broker = Broker();
        var c = broker.CreateClient();
        await c.Subscribe("puller", "orders");
        await c.Subscribe("pusher", "orders", Push(receiver));

        var pull = await c.Post("/v1/consumer-groups/puller/subscriptions/orders/pause");
        Assert.Equal(HttpStatusCode.Conflict, pull.Status);
        Assert.Equal("not-a-push-subscription", pull.Code);
        Assert.Equal(HttpStatusCode.NotFound, (await c.Post("/v1/consumer-groups/nobody/subscriptions/orders/pause")).Status);
        var badReason = await c.Post("/v1/consumer-groups/pusher/subscriptions/orders/pause", new { reason = new string('x', 501) });
        Assert.Equal(HttpStatusCode.BadRequest, badReason.Status);
        Assert.False((await Subscription(c, "pusher", "orders"))["paused"]!.GetValue<bool>());

        Assert.Equal(HttpStatusCode.OK, (await c.Post("/v1/consumer-groups/pusher/subscriptions/orders/pause")).Status);
        Assert.Equal(HttpStatusCode.OK, (await c.Post("/v1/consumer-groups/pusher/subscriptions/orders/pause")).Status);
        var entries = (await c.Get("/v1/audit?target=pusher/orders")).Json["entries"]!.AsArray();
        Assert.Single(entries, e => e.Str("action") == "subscription.pause");

        var consumerKey = (await c.Post("/v1/api-keys", new { name = "other", role = "consumer", consumerGroups = new[] { "other" } })).Json.Str("key");
        var forbidden = await broker.CreateClient(consumerKey).Post("/v1/consumer-groups/pusher/subscriptions/orders/resume");
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.Status);
    }
}
