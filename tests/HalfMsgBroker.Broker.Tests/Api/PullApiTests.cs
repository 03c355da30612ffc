using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Api;

public sealed class PullApiTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    private readonly HttpClient _c = broker.Client;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task A_half_message_is_invisible_until_committed_then_received_and_acked()
    {
        var (group, topic, tx) = (Unique("g"), Unique("t"), Unique("tx"));
        await _c.Subscribe(group, topic);
        var id = await _c.SendHalf(topic, tx);
        Assert.Empty(await _c.Receive(group, topic));

        await _c.Post($"/v1/transactions/{tx}/commit");
        var received = Assert.Single(await _c.Receive(group, topic, wait: 5))!;
        Assert.Equal(id, received.Str("messageId"));
        Assert.Equal(1, received.Int("attempt"));
        Assert.Equal(tx, received["body"]!["orderId"]!.GetValue<string>());

        var ack = await _c.Ack(group, received.Str("receiptHandle"));
        Assert.Equal(1, ack.Json.Int("acked"));
        var again = await _c.Ack(group, received.Str("receiptHandle"));
        Assert.Equal(0, again.Json.Int("acked"));
        Assert.Equal(received.Str("receiptHandle"), Assert.Single(again.Json["stale"]!.AsArray())!.GetValue<string>());
        Assert.Equal("acked", await _c.DeliveryState(id, group));
    }

    [Fact]
    public async Task A_rolled_back_message_is_never_delivered()
    {
        var (group, topic, tx) = (Unique("g"), Unique("t"), Unique("tx"));
        await _c.Subscribe(group, topic);
        var id = await _c.SendHalf(topic, tx);
        await _c.Post($"/v1/transactions/{tx}/rollback");
        Assert.Empty(await _c.Receive(group, topic, wait: 1));
        Assert.Empty((await _c.Message(id))["deliveries"]!.AsArray());
    }

    [Fact]
    public async Task A_waiting_receive_wakes_when_a_message_is_committed()
    {
        var (group, topic, tx) = (Unique("g"), Unique("t"), Unique("tx"));
        await _c.Subscribe(group, topic);
        await _c.SendHalf(topic, tx);
        var waiting = _c.Receive(group, topic, wait: 20);
        var queue = ((HalfMsgBroker.Delivery.DeliveryRegistry)broker.Factory.Services.GetService(typeof(HalfMsgBroker.Delivery.DeliveryRegistry))!).Find(group, topic)!;
        await Eventually.Until(() => queue.WaitingReceivers == 1, "the receive waiting in its long poll");
        await _c.Post($"/v1/transactions/{tx}/commit");
        var received = await waiting.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Single(received);
    }

    [Fact]
    public async Task An_unacked_message_becomes_visible_again_with_the_next_attempt()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic);
        var id = await _c.Send(topic);
        var first = Assert.Single(await _c.Receive(group, topic, invisible: 1))!;
        Assert.Empty(await _c.Receive(group, topic));

        var second = await Eventually.Until(() => _c.Receive(group, topic), m => m.Count == 1, "redelivery after visibility timeout");
        Assert.Equal(2, second[0].Int("attempt"));
        Assert.Equal(id, second[0].Str("messageId"));
        var stale = await _c.Ack(group, first.Str("receiptHandle"));
        Assert.Single(stale.Json["stale"]!.AsArray());
        Assert.Equal(1, (await _c.Ack(group, second[0].Str("receiptHandle"))).Json.Int("acked"));
    }

    [Fact]
    public async Task Nack_returns_the_message_after_the_given_delay()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic);
        await _c.Send(topic);
        var first = Assert.Single(await _c.Receive(group, topic))!;
        var nack = await _c.Post($"/v1/consumer-groups/{group}/nack", new { receiptHandle = first.Str("receiptHandle"), retryAfterSeconds = 1 });
        Assert.Equal(HttpStatusCode.OK, nack.Status);
        Assert.Equal("retrying", nack.Json.Str("state"));
        Assert.Empty(await _c.Receive(group, topic));
        var again = await Eventually.Until(() => _c.Receive(group, topic), m => m.Count == 1, "nacked message back");
        Assert.Equal(2, again[0].Int("attempt"));

        var staleNack = await _c.Post($"/v1/consumer-groups/{group}/nack", new { receiptHandle = first.Str("receiptHandle") });
        Assert.Equal(HttpStatusCode.Conflict, staleNack.Status);
        Assert.Equal("stale-receipt-handle", staleNack.Code);
    }

    [Fact]
    public async Task Change_invisibility_extends_and_keeps_the_handle_valid()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic);
        await _c.Send(topic);
        var m = Assert.Single(await _c.Receive(group, topic, invisible: 1))!;
        var handle = m.Str("receiptHandle");
        var extended = await _c.Post($"/v1/consumer-groups/{group}/change-invisibility", new { receiptHandle = handle, invisibleSeconds = 60 });
        Assert.Equal(HttpStatusCode.OK, extended.Status);
        Assert.Equal(handle, extended.Json.Str("receiptHandle"));
        Assert.True(extended.Json["visibleAt"]!.GetValue<DateTime>() > DateTime.UtcNow.AddSeconds(30));

        // Past the original 1 s the message is still hidden, and the same handle acks it.
        await Eventually.Until(async () => await _c.Receive(group, topic), r => r.Count == 0, "still hidden");
        Assert.Equal(1, (await _c.Ack(group, handle)).Json.Int("acked"));
        var stale = await _c.Post($"/v1/consumer-groups/{group}/change-invisibility", new { receiptHandle = handle, invisibleSeconds = 5 });
        Assert.Equal(HttpStatusCode.Conflict, stale.Status);
    }

    [Fact]
    public async Task After_max_attempts_a_pull_delivery_is_dead_lettered()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic, new { maxAttempts = 2 });
        var id = await _c.Send(topic);
        for (var attempt = 1; attempt <= 2; attempt++)
        {
            var m = Assert.Single(await Eventually.Until(() => _c.Receive(group, topic), r => r.Count == 1, $"attempt {attempt}"))!;
            Assert.Equal(attempt, m.Int("attempt"));
            await _c.Post($"/v1/consumer-groups/{group}/nack", new { receiptHandle = m.Str("receiptHandle"), retryAfterSeconds = 0 });
        }
        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "deadLettered", "dead letter");
        Assert.Empty(await _c.Receive(group, topic));
        var dead = (await _c.Get($"/v1/consumer-groups/{group}/dead-letters")).Json["deadLetters"]!.AsArray();
        Assert.Equal(2, Assert.Single(dead).Int("attempts"));
    }

    [Fact]
    public async Task A_receipt_handle_cannot_be_used_by_another_group()
    {
        var (owner, thief, topic) = (Unique("owner"), Unique("thief"), Unique("t"));
        await _c.Subscribe(owner, topic);
        await _c.Subscribe(thief, topic);
        await _c.Send(topic);
        var m = Assert.Single(await _c.Receive(owner, topic))!;
        var forged = await _c.Ack(thief, m.Str("receiptHandle"));
        Assert.Equal(HttpStatusCode.BadRequest, forged.Status);
        Assert.Equal("invalid-receipt-handle", forged.Code);
        Assert.Equal(1, (await _c.Ack(owner, m.Str("receiptHandle"))).Json.Int("acked"));
        Assert.Single(await _c.Receive(thief, topic));
    }

    [Fact]
    public async Task Fan_out_tag_filters_and_late_subscriptions()
    {
        var topic = Unique("t");
        var (all, paid, late) = (Unique("all"), Unique("paid"), Unique("late"));
        await _c.Subscribe(all, topic);
        await _c.Subscribe(paid, topic, new { tagFilter = "paid || refunded" });
        await _c.Send(topic, tag: "created");
        await _c.Send(topic, tag: "paid");
        await _c.Subscribe(late, topic);

        Assert.Equal(2, (await _c.Receive(all, topic)).Count);
        Assert.Equal("paid", Assert.Single(await _c.Receive(paid, topic)).Str("tag"));
        Assert.Empty(await _c.Receive(late, topic));
        await _c.Send(topic, tag: "shipped");
        Assert.Single(await _c.Receive(late, topic, wait: 5));
    }

    [Fact]
    public async Task A_delayed_message_is_handed_out_at_its_due_time_not_before()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic);
        var sentAt = DateTime.UtcNow;
        var id = await _c.Send(topic, delaySeconds: 1);
        Assert.Empty(await _c.Receive(group, topic));
        Assert.Equal("pending", await _c.DeliveryState(id, group));
        var received = await Eventually.Until(() => _c.Receive(group, topic), r => r.Count == 1, "delayed message");
        Assert.True(DateTime.UtcNow - sentAt >= TimeSpan.FromSeconds(0.9), "handed out before its due time");
        Assert.Equal(id, received[0].Str("messageId"));
    }

    [Fact]
    public async Task Consumer_group_view_counts_ready_and_in_flight()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic);
        for (var i = 0; i < 3; i++) await _c.Send(topic);
        await _c.Receive(group, topic, max: 1);
        var view = (await _c.Get($"/v1/consumer-groups/{group}")).Json;
        var counts = Assert.Single(view["subscriptions"]!.AsArray())!["counts"]!;
        Assert.Equal((2, 1, 0, 0), (counts.Int("ready"), counts.Int("inFlight"), counts.Int("retrying"), counts.Int("deadLettered")));

        Assert.Equal(HttpStatusCode.NoContent, (await _c.Delete($"/v1/consumer-groups/{group}/subscriptions/{topic}")).Status);
        Assert.Equal("consumer-group-not-found", (await _c.Get($"/v1/consumer-groups/{group}")).Code);
        Assert.Equal("subscription-not-found", (await _c.Post($"/v1/consumer-groups/{group}/topics/{topic}/receive", new { })).Code);
    }
}
