namespace HalfMsgBroker.Client.Tests;

/// <summary>Replay, retry-now and ordering keys through the client.</summary>
[Collection(BrokerCollection.Name)]
public sealed class ReplayClientTests(BrokerFixture broker)
{
    private readonly string _topic = Names.Unique("replayed");
    private readonly string _group = Names.Unique("replayer");

    [Fact]
    public async Task Replay_delivers_an_acked_message_again_and_retry_now_ends_a_long_backoff()
    {
        await broker.Api.PutSubscriptionAsync(_group, _topic, new SubscriptionRequest());
        var from = DateTimeOffset.UtcNow.AddSeconds(-1);
        var sent = await broker.Client.SendAsync(_topic, new Order("r-1", 1));
        var wait = new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(5) };
        Assert.True(await Assert.Single(await broker.Client.ReceiveAsync(_group, _topic, wait)).AckAsync());

        Assert.Equal(1, await broker.Client.ReplayAsync(_group, _topic, from));
        var replayed = Assert.Single(await broker.Client.ReceiveAsync(_group, _topic, wait));
        Assert.Equal(sent.MessageId, replayed.MessageId);

        await replayed.NackAsync(TimeSpan.FromHours(1));
        Assert.Equal(1, await broker.Client.RetryNowAsync(_group, _topic, [sent.MessageId]));
        Assert.Equal(sent.MessageId, Assert.Single(await broker.Client.ReceiveAsync(_group, _topic, wait)).MessageId);

        var future = await Assert.ThrowsAsync<HalfMsgException>(() => broker.Client.ReplayAsync(_group, _topic, DateTimeOffset.UtcNow.AddHours(1)));
        Assert.Equal((400, "invalid-field"), (future.Status, future.Code));
        var unknown = await Assert.ThrowsAsync<HalfMsgException>(() => broker.Client.RetryNowAsync(_group, "no-such-topic"));
        Assert.Equal((404, "subscription-not-found"), (unknown.Status, unknown.Code));
    }

    [Fact]
    public async Task An_ordering_key_holds_the_keys_next_message_until_the_first_is_acked()
    {
        await broker.Api.PutSubscriptionAsync(_group, _topic, new SubscriptionRequest());
        var half = await broker.Client.SendHalfAsync(_topic, Names.Unique("orders"), new Order("o-1", 1),
            new HalfMsgSendOptions { OrderingKey = "customer-1", CheckImmunity = TimeSpan.FromMinutes(10) });
        var first = await broker.Client.SendAsync(_topic, new Order("o-2", 1), new MessageOptions { OrderingKey = "customer-1" });
        await broker.Client.CommitAsync(half.TransactionId);
        var wait = new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(5) };

        var got = Assert.Single(await broker.Client.ReceiveAsync(_group, _topic, wait));
        Assert.Equal(first.MessageId, got.MessageId); // committed first
        Assert.Equal("customer-1", got.OrderingKey);
        Assert.Empty(await broker.Client.ReceiveAsync(_group, _topic, new ReceiveOptions { WaitTime = TimeSpan.Zero }));
        Assert.True(await got.AckAsync());
        Assert.Equal(half.MessageId, Assert.Single(await broker.Client.ReceiveAsync(_group, _topic, wait)).MessageId);
    }
}
