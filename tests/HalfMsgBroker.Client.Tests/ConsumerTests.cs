using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Client.Tests;

[Collection(BrokerCollection.Name)]
public sealed class ConsumerTests(BrokerFixture broker) : IDisposable
{
    private readonly OrderDb _db = new();
    private readonly string _topic = Names.Unique("orders");
    private readonly string _group = Names.Unique("inventory");

    public void Dispose() => _db.Dispose();

    private async Task<string> SubscribeAndSendAsync(Order order)
    {
        await broker.Api.PutSubscriptionAsync(_group, _topic, new SubscriptionRequest());
        return (await broker.Client.SendAsync(_topic, order, new MessageOptions { Keys = [order.OrderId] })).MessageId;
    }

    private Task<DeliveryInfo> WaitForDeliveryAsync(string messageId, DeliveryState state) =>
        Eventually.UntilAsync(
            async () => (await broker.Api.GetMessageAsync(messageId)).Deliveries?.SingleOrDefault(d => d.ConsumerGroup == _group),
            d => d?.State == state,
            $"delivery of {messageId} to become {state}")!;

    [Fact]
    public async Task Receive_stream_nack_redelivers_then_ack_settles_and_a_second_ack_is_stale()
    {
        var messageId = await SubscribeAndSendAsync(new Order("p-1", 2));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var attempts = new List<int>();

        await foreach (var message in broker.Client.ReceiveAllAsync(_group, _topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(5) }, cts.Token))
        {
            Assert.Equal(messageId, message.MessageId);
            attempts.Add(message.Attempt);
            if (message.Attempt == 1)
            {
                await message.NackAsync(TimeSpan.Zero);
                continue;
            }

            Assert.True(await message.AckAsync());
            Assert.False(await message.AckAsync()); // already acked: stale, not an error
            break;
        }

        Assert.Equal([1, 2], attempts);
        var delivery = await WaitForDeliveryAsync(messageId, DeliveryState.Acked);
        Assert.Equal(2, delivery.Attempts);
    }

    [Fact]
    public async Task Extending_invisibility_keeps_a_message_hidden_past_its_first_deadline()
    {
        await broker.Api.PutSubscriptionAsync(_group, _topic, new SubscriptionRequest());
        var extendedId = (await broker.Client.SendAsync(_topic, new Order("p-2", 1))).MessageId;
        var plainId = (await broker.Client.SendAsync(_topic, new Order("p-3", 1))).MessageId;
        var oneSecond = new ReceiveOptions { MaxMessages = 10, WaitTime = TimeSpan.FromSeconds(5), InvisibleFor = TimeSpan.FromSeconds(1) };

        var first = await Eventually.UntilAsync(
            async () => (await broker.Client.ReceiveAsync(_group, _topic, oneSecond)).ToList(),
            batch => batch.Count == 2,
            "both messages") ;
        var extended = first.Single(m => m.MessageId == extendedId);
        var visibleAt = await extended.ExtendAsync(TimeSpan.FromSeconds(8));
        Assert.True(visibleAt > DateTimeOffset.UtcNow.AddSeconds(5));

        // the plain one comes back after its 1 s; the extended one does not
        var again = await Eventually.UntilAsync(
            async () => (await broker.Client.ReceiveAsync(_group, _topic, oneSecond with { WaitTime = TimeSpan.FromSeconds(2) })).ToList(),
            batch => batch.Count > 0,
            "the unextended message to come back");
        var back = Assert.Single(again);
        Assert.Equal(plainId, back.MessageId);
        Assert.Equal(2, back.Attempt);
        Assert.True(await back.AckAsync());
        Assert.True(await extended.AckAsync()); // the handle stayed valid across the extension
        Assert.Equal(1, (await WaitForDeliveryAsync(extendedId, DeliveryState.Acked)).Attempts);
    }

    [Fact]
    public async Task Hosted_pull_consumer_bounds_concurrency_extends_slow_handlers_and_acks_each_message_once()
    {
        var handled = new ConcurrentDictionary<string, int>();
        var running = 0;
        var maxRunning = 0;
        await using var app = await TestApp.StartAsync(
            broker.BaseAddress,
            b => b.AddPullConsumer<Order>(_group, _topic, async (delivery, _, ct) =>
            {
                var now = Interlocked.Increment(ref running);
                InterlockedMax(ref maxRunning, now);
                handled.AddOrUpdate(delivery.MessageId, 1, (_, n) => n + 1);
                await Task.Delay(TimeSpan.FromMilliseconds(2600), ct); // slower than the 2 s invisibility
                Interlocked.Decrement(ref running);
            }, o =>
            {
                o.MaxConcurrency = 2;
                o.InvisibleFor = TimeSpan.FromSeconds(2);
                o.ExtendEvery = TimeSpan.FromMilliseconds(400);
                o.WaitTime = TimeSpan.FromSeconds(1);
            }),
            _ => { });
        await Eventually.UntilAsync(
            async () => (await GroupOrNullAsync())?.Subscriptions.Count ?? 0,
            n => n == 1,
            "the hosted consumer's subscription",
            TimeSpan.FromSeconds(10)).ConfigureAwait(true);

        var ids = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            ids.Add((await broker.Client.SendAsync(_topic, new Order("q-" + i, 1))).MessageId);
        }

        foreach (var id in ids)
        {
            var delivery = await WaitForDeliveryAsync(id, DeliveryState.Acked);
            Assert.Equal(1, delivery.Attempts);
        }

        Assert.Equal(ids.Order(), handled.Keys.Order());
        Assert.All(handled.Values, n => Assert.Equal(1, n));
        Assert.Equal(2, maxRunning);
    }

    [Fact]
    public async Task Idempotency_helper_skips_a_redelivered_message()
    {
        var messageId = await SubscribeAndSendAsync(new Order("r-1", 5));
        var options = new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(5) };
        var outcomes = new List<bool>();

        for (var delivery = 1; delivery <= 2; delivery++)
        {
            var message = Assert.Single(await broker.Client.ReceiveAsync(_group, _topic, options));
            Assert.Equal(delivery, message.Attempt);
            await using var connection = _db.Open();
            outcomes.Add(await _db.Processed.ProcessOnceAsync(connection, message.ToDelivery<Order>(), async (db, tx, ct) =>
            {
                Assert.Same(connection, db);
                await using var command = ((Microsoft.Data.Sqlite.SqliteConnection)db).CreateCommand();
                command.Transaction = (Microsoft.Data.Sqlite.SqliteTransaction)tx;
                command.CommandText = "INSERT INTO reservations (order_id) VALUES ($o)";
                command.Parameters.AddWithValue("$o", message.GetBody<Order>().OrderId);
                await command.ExecuteNonQueryAsync(ct);
            }));
            if (delivery == 1)
            {
                await message.NackAsync(TimeSpan.Zero); // e.g. the ack got lost: the broker delivers it again
            }
            else
            {
                Assert.True(await message.AckAsync());
            }
        }

        Assert.Equal([true, false], outcomes);
        Assert.Equal(1, _db.Count("reservations", "r-1"));
        Assert.Equal(2, (await WaitForDeliveryAsync(messageId, DeliveryState.Acked)).Attempts);
    }

    [Fact]
    public async Task Push_endpoint_answers_5xx_when_the_handler_throws_so_the_broker_retries()
    {
        var attempts = new ConcurrentQueue<(string MessageId, int Attempt, string OrderId)>();
        await using var app = await TestApp.StartAsync(
            broker.BaseAddress,
            b => b.AddPushSubscription(_group, _topic, TestApp.UrlOf("/halfmsg/orders"), new SubscriptionRequest(MaxAttempts: 5)),
            a => a.MapHalfMsgPush<Order>("/halfmsg/orders", (delivery, _) =>
            {
                attempts.Enqueue((delivery.MessageId, delivery.Attempt, delivery.Body.OrderId));
                return delivery.Attempt == 1 ? throw new InvalidOperationException("stock service busy") : Task.CompletedTask;
            }));
        await Eventually.UntilAsync(
            async () => (await GroupOrNullAsync())?.Subscriptions.SingleOrDefault()?.Push?.Url,
            url => url == app.Url("/halfmsg/orders"),
            "the push subscription registration");

        var messageId = (await broker.Client.SendAsync(_topic, new Order("s-1", 1))).MessageId;

        var delivery = await WaitForDeliveryAsync(messageId, DeliveryState.Acked);
        Assert.Equal(2, delivery.Attempts);
        Assert.Equal([(messageId, 1, "s-1"), (messageId, 2, "s-1")], attempts.ToArray());
    }

    private async Task<ConsumerGroupInfo?> GroupOrNullAsync()
    {
        try
        {
            return await broker.Api.GetConsumerGroupAsync(_group);
        }
        catch (HalfMsgException ex) when (ex.Status == 404)
        {
            return null;
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while (value > (current = Volatile.Read(ref target)))
        {
            if (Interlocked.CompareExchange(ref target, value, current) == current)
            {
                return;
            }
        }
    }
}
