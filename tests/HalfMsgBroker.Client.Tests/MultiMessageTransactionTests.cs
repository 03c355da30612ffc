using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Client.Tests;

/// <summary><see cref="TransactionalProducer"/> with several messages, across topics, in one transaction.</summary>
[Collection(BrokerCollection.Name)]
public sealed class MultiMessageTransactionTests(BrokerFixture broker) : IDisposable
{
    private readonly OrderDb _db = new();
    private readonly string _orders = Names.Unique("orders");
    private readonly string _stock = Names.Unique("stock");
    private readonly string _group = Names.Unique("order-service");
    private readonly string _consumer = Names.Unique("fulfilment");

    public void Dispose() => _db.Dispose();

    private async Task<TestApp> StartProducerAppAsync()
    {
        await broker.Api.PutSubscriptionAsync(_consumer, _orders, new SubscriptionRequest());
        await broker.Api.PutSubscriptionAsync(_consumer, _stock, new SubscriptionRequest());
        var app = await TestApp.StartAsync(
            broker.BaseAddress,
            b =>
            {
                b.Services.AddSingleton(_db);
                b.AddTransactionalProducer(_group, TestApp.UrlOf("/halfmsg/check")).AddTransactionChecker<LogChecker>();
            },
            a => a.MapHalfMsgCheck("/halfmsg/check"));
        await app.Services.GetRequiredService<IHalfMsgRegistrationStatus>().WhenRegistered.WaitAsync(TimeSpan.FromSeconds(30));
        return app;
    }

    private IReadOnlyList<TransactionMessage> Messages(HalfMsgClient client, string orderId) =>
    [
        new(_orders, client.ToJson(new Order(orderId, 2)), Tag: "created"),
        new(_stock, client.ToJson(new { sku = "A", reserve = 2 })),
        new(_orders, client.ToJson(new Order(orderId + "-gift", 1))),
    ];

    private async Task<List<string>> ReceiveAllAsync(string topic, int expected)
    {
        var ids = new List<string>();
        for (var i = 0; i < 10 && ids.Count < expected; i++)
        {
            var received = await broker.Client.ReceiveAsync(_consumer, topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(2), InvisibleFor = TimeSpan.FromSeconds(30) });
            foreach (var m in received)
            {
                ids.Add(m.MessageId);
                Assert.True(await m.AckAsync());
            }
        }
        return ids;
    }

    [Fact]
    public async Task A_local_commit_commits_and_delivers_every_message()
    {
        await using var app = await StartProducerAppAsync();
        var producer = app.Services.GetRequiredService<TransactionalProducer>();
        var client = app.Services.GetRequiredService<HalfMsgClient>();
        LocalTransactionContext? seen = null;

        var result = await producer.SendInTransactionAsync(Messages(client, "m-1"), async (tx, _) =>
        {
            seen = tx;
            await _db.PlaceOrderAsync("m-1", tx.TransactionId);
            return LocalTransactionState.Commit;
        });

        Assert.False(result.LeftToCheckBack);
        Assert.Equal(_orders, seen!.Topic);
        Assert.Equal(result.MessageId, seen.MessageId);
        Assert.Equal(MessageState.Committed, (await broker.Api.GetTransactionAsync(result.TransactionId)).State);
        var orders = await ReceiveAllAsync(_orders, 2);
        var stock = await ReceiveAllAsync(_stock, 1);
        Assert.Equal(2, orders.Count);
        Assert.Contains(result.MessageId, orders);
        Assert.Single(stock);
    }

    [Fact]
    public async Task A_lost_end_is_resolved_for_all_messages_by_one_check()
    {
        await using var app = await StartProducerAppAsync();
        var producer = app.Services.GetRequiredService<TransactionalProducer>();
        var client = app.Services.GetRequiredService<HalfMsgClient>();
        string? transactionId = null;

        await Assert.ThrowsAsync<TimeoutException>(() => producer.SendInTransactionAsync(Messages(client, "m-2"), async (tx, _) =>
        {
            transactionId = tx.TransactionId;
            await _db.PlaceOrderAsync("m-2", tx.TransactionId); // committed locally …
            throw new TimeoutException("… but the acknowledgement got lost");
        }, checkImmunity: TimeSpan.FromSeconds(1)));

        var info = await Eventually.UntilAsync(() => broker.Api.GetTransactionAsync(transactionId!), t => t.State != MessageState.Prepared, "the check-back");
        Assert.Equal(MessageState.Committed, info.State);
        Assert.Equal(TransactionResolver.Check, info.ResolvedBy);
        Assert.Equal(2, (await ReceiveAllAsync(_orders, 2)).Count);
        Assert.Single(await ReceiveAllAsync(_stock, 1));
        Assert.Single(_db.CheckAnswers, a => a.TransactionId == transactionId);
    }

    [Fact]
    public async Task A_producer_groups_check_limits_are_set_and_shown_and_kept_by_a_put_without_them()
    {
        var set = await broker.Client.PutProducerGroupAsync(_group, new ProducerGroupRequest(new Uri("http://127.0.0.1:9/check"), MaxChecksInFlight: 2, MaxChecksPerSecond: 20));
        Assert.Equal((2, (int?)20), (set.MaxChecksInFlight, set.MaxChecksPerSecond));

        // What the SDK's own registration does at every start: a PUT of the check URL alone keeps the limits.
        var again = await broker.Client.PutProducerGroupAsync(_group, new ProducerGroupRequest(new Uri("http://127.0.0.1:9/check")));
        Assert.Equal((2, (int?)20), (again.MaxChecksInFlight, again.MaxChecksPerSecond));
        var shown = await broker.Client.GetProducerGroupAsync(_group);
        Assert.Equal((2, (int?)20), (shown.MaxChecksInFlight, shown.MaxChecksPerSecond));
    }
}
