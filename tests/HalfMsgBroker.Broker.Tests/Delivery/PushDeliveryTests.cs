using System.Net;
using System.Net.Sockets;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Delivery;

/// <summary>Push delivery against real Kestrel receivers on loopback ports (backoff: 100 ms, then 200 ms).</summary>
public sealed class PushDeliveryTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    private readonly HttpClient _c = broker.Client;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private async Task<(string Group, string Topic)> PushSubscription(TestReceiver receiver, object? extra = null, int timeoutMs = 2000)
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        var body = System.Text.Json.Nodes.JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(extra ?? new { }))!.AsObject();
        body["push"] = new System.Text.Json.Nodes.JsonObject { ["url"] = receiver.Url, ["timeoutMs"] = timeoutMs };
        await _c.Subscribe(group, topic, body);
        return (group, topic);
    }

    [Fact]
    public async Task A_failing_endpoint_is_retried_with_backoff_until_it_succeeds()
    {
        await using var receiver = await TestReceiver.Start((_, n) => Task.FromResult((n <= 2 ? 503 : 200, (string?)null)));
        var (group, topic) = await PushSubscription(receiver);
        var id = await _c.Send(topic, new { orderId = 7 }, tag: "created");

        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "acked", "push acked");
        var requests = receiver.Requests.ToArray();
        Assert.Equal(3, requests.Length);
        Assert.Equal(new[] { 1, 2, 3 }, requests.Select(r => r.Body.Int("attempt")));
        Assert.Equal(new[] { "1", "2", "3" }, requests.Select(r => r.Headers["HalfMsg-Attempt"]));
        Assert.All(requests, r => Assert.Equal(id, r.Headers["HalfMsg-Message-Id"]));
        Assert.All(requests, r => Assert.Equal(group, r.Headers["HalfMsg-Consumer-Group"]));
        Assert.Equal(group, requests[0].Body.Str("consumerGroup"));
        Assert.Equal(7, requests[0].Body["body"]!.Int("orderId"));
        Assert.Equal("created", requests[0].Body.Str("tag"));
        Assert.True(requests[1].At - requests[0].At >= TimeSpan.FromMilliseconds(90), "first retry before the 100 ms backoff");
        Assert.True(requests[2].At - requests[1].At >= TimeSpan.FromMilliseconds(190), "second retry before the 200 ms backoff");
        var delivery = (await _c.Message(id))["deliveries"]![0]!;
        Assert.Equal(3, delivery.Int("attempts"));
    }

    [Fact]
    public async Task The_traceparent_of_the_send_travels_with_the_push()
    {
        await using var receiver = await TestReceiver.Answering(200);
        var (_, topic) = await PushSubscription(receiver);
        const string trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        await _c.Post($"/v1/topics/{topic}/messages", new { body = 1 }, new Dictionary<string, string> { ["traceparent"] = trace });
        await Eventually.Until(() => receiver.Requests.Count == 1, "push");
        Assert.True(receiver.Requests.TryPeek(out var request));
        // The producer's own traceparent, or (while a tracer listens, as in the tracing tests running
        // alongside) the broker's push span under it: the same trace either way.
        Assert.Equal(trace.Split('-')[1], request.Headers["traceparent"].Split('-')[1]);
    }

    [Fact]
    public async Task A_dead_port_exhausts_into_dead_letters_and_redrive_delivers_again()
    {
        var port = ClosedPort();
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic, new { push = new { url = $"http://127.0.0.1:{port}/hook", timeoutMs = 1000 }, maxAttempts = 2 });
        var id = await _c.Send(topic);

        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "deadLettered", "dead letter");
        var dead = Assert.Single((await _c.Get($"/v1/consumer-groups/{group}/dead-letters?topic={topic}")).Json["deadLetters"]!.AsArray())!;
        Assert.Equal(id, dead.Str("messageId"));
        Assert.Equal(2, dead.Int("attempts"));
        Assert.StartsWith("connection refused", dead.Str("lastError"), StringComparison.Ordinal);
        var counts = (await _c.Get($"/v1/consumer-groups/{group}")).Json["subscriptions"]![0]!["counts"]!;
        Assert.Equal(1, counts.Int("deadLettered"));

        await using var receiver = await TestReceiver.Answering(200);
        await _c.Subscribe(group, topic, new { push = new { url = receiver.Url }, maxAttempts = 2 });
        var redrive = await _c.Post($"/v1/consumer-groups/{group}/dead-letters/redrive", new { messageIds = new[] { id } });
        Assert.Equal(1, redrive.Json.Int("redriven"));
        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "acked", "redriven push acked");
        Assert.Equal(1, Assert.Single(receiver.Requests).Body.Int("attempt"));
        Assert.Empty((await _c.Get($"/v1/consumer-groups/{group}/dead-letters")).Json["deadLetters"]!.AsArray());
    }

    [Fact]
    public async Task An_endpoint_that_hangs_past_the_timeout_is_a_failed_attempt()
    {
        using var release = new CancellationTokenSource();
        await using var receiver = await TestReceiver.Start(async (_, n) =>
        {
            if (n == 1) await Task.Delay(Timeout.Infinite, release.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            return (200, null);
        });
        var (group, topic) = await PushSubscription(receiver, timeoutMs: 300);
        var id = await _c.Send(topic);
        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "acked", "acked on the second attempt");
        await release.CancelAsync();
        var delivery = (await _c.Message(id))["deliveries"]![0]!;
        Assert.Equal(2, delivery.Int("attempts"));
        Assert.Equal("timeout", delivery.Str("lastError"));
    }

    [Fact]
    public async Task Best_effort_notification_gives_up_after_max_attempts()
    {
        await using var receiver = await TestReceiver.Answering(500);
        var (group, topic) = await PushSubscription(receiver, new { maxAttempts = 3, onExhausted = "discard" });
        var id = await _c.Send(topic);
        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "discarded", "discarded");
        Assert.Equal(3, receiver.Requests.Count);
        var delivery = (await _c.Message(id))["deliveries"]![0]!;
        Assert.Contains("http 500", delivery.Str("lastError"), StringComparison.Ordinal);
        Assert.Empty((await _c.Get($"/v1/consumer-groups/{group}/dead-letters")).Json["deadLetters"]!.AsArray());
    }

    [Fact]
    public async Task A_slow_endpoint_does_not_delay_another_group()
    {
        using var release = new CancellationTokenSource();
        await using var slow = await TestReceiver.Start(async (_, _) =>
        {
            await Task.Delay(Timeout.Infinite, release.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            return (200, null);
        });
        await using var fast = await TestReceiver.Answering(200);
        var topic = Unique("t");
        var (slowGroup, fastGroup) = (Unique("slow"), Unique("fast"));
        await _c.Subscribe(slowGroup, topic, new { push = new { url = slow.Url, timeoutMs = 60000 } });
        await _c.Subscribe(fastGroup, topic, new { push = new { url = fast.Url } });

        var ids = new List<string>();
        for (var i = 0; i < 40; i++) ids.Add(await _c.Send(topic, new { i }));
        await Eventually.Until(() => fast.Requests.Count >= 40, "every message pushed to the fast group");
        Assert.All(ids.Take(5), id => Assert.Equal("inFlight", _c.DeliveryState(id, slowGroup).Result));
        Assert.True(slow.Requests.Count <= 16, $"the slow group holds at most its 16 slots in flight, had {slow.Requests.Count}");
        await release.CancelAsync();
    }

    [Fact]
    public async Task Fan_out_tag_filters_and_delays_apply_to_push()
    {
        await using var receiver = await TestReceiver.Answering(200);
        var topic = Unique("t");
        var groups = new[] { Unique("a"), Unique("b"), Unique("c") };
        foreach (var g in groups) await _c.Subscribe(g, topic, new { push = new { url = receiver.Url } });
        var onlyPaid = Unique("paid");
        await _c.Subscribe(onlyPaid, topic, new { push = new { url = receiver.Url }, tagFilter = "paid" });

        var created = await _c.Send(topic, tag: "created");
        var sentAt = DateTime.UtcNow;
        var paidLater = await _c.Send(topic, tag: "paid", delaySeconds: 1);

        await Eventually.Until(() => receiver.Requests.Count >= 7, "3 + 4 pushes");
        var byMessage = receiver.Requests.GroupBy(r => r.Body.Str("messageId")).ToDictionary(g => g.Key, g => g.Select(r => r.Body.Str("consumerGroup")).Order().ToArray());
        Assert.Equal(groups.Order(), byMessage[created]);
        Assert.Equal(groups.Append(onlyPaid).Order(), byMessage[paidLater]);
        Assert.All(receiver.Requests.Where(r => r.Body.Str("messageId") == paidLater), r => Assert.True(r.At - sentAt >= TimeSpan.FromSeconds(0.9), "pushed before due"));
        foreach (var g in groups) Assert.Equal("acked", await _c.DeliveryState(created, g));
    }

    [Fact]
    public async Task Dead_letters_can_be_deleted_for_good()
    {
        await using var receiver = await TestReceiver.Answering(500);
        var (group, topic) = await PushSubscription(receiver, new { maxAttempts = 1 });
        var first = await _c.Send(topic);
        var second = await _c.Send(topic);
        await Eventually.Until(async () => (await _c.Get($"/v1/consumer-groups/{group}/dead-letters")).Json["deadLetters"]!.AsArray().Count, n => n == 2, "two dead letters");

        Assert.Equal(HttpStatusCode.NoContent, (await _c.Delete($"/v1/consumer-groups/{group}/dead-letters/{first}")).Status);
        Assert.Equal("discarded", await _c.DeliveryState(first, group));
        Assert.Equal("dead-letter-not-found", (await _c.Delete($"/v1/consumer-groups/{group}/dead-letters/{first}")).Code);
        Assert.Equal(1, (await _c.Delete($"/v1/consumer-groups/{group}/dead-letters?topic={topic}")).Json.Int("deleted"));
        Assert.Equal("discarded", await _c.DeliveryState(second, group));
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
