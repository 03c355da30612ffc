using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Client.Tests;

/// <summary>
/// The check URL is written once, in <c>MapHalfMsgCheck</c>: the producer group is PUT with the public base
/// address (or the server's own) followed by that route. And what an unknown local transaction returns.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class CheckUrlTests(BrokerFixture broker)
{
    private readonly string _group = Names.Unique("derived");
    private readonly string _topic = Names.Unique("derived-orders");

    private async Task<TestApp> StartAsync(Action<WebApplication> map, Uri? publicBase = null)
    {
        var app = await TestApp.StartAsync(
            broker.BaseAddress,
            b => b.AddTransactionalProducer(_group, TimeSpan.FromSeconds(2)),
            map,
            o => o.PublicBaseAddress = publicBase);
        await app.Services.GetRequiredService<IHalfMsgRegistrationStatus>().WhenRegistered.WaitAsync(TimeSpan.FromSeconds(30));
        return app;
    }

    [Fact]
    public async Task Without_a_public_base_address_the_check_url_is_the_servers_address_and_the_mapped_route_of_its_group()
    {
        await using var app = await StartAsync(a => a.MapGroup("/halfmsg").MapHalfMsgCheck("/check", (_, _, _) => Task.FromResult(LocalTransactionState.Commit)));

        var group = await broker.Client.GetProducerGroupAsync(_group);
        Assert.Equal(app.Url("/halfmsg/check"), group.CheckUrl);
        Assert.Equal(TimeSpan.FromSeconds(2), group.CheckTimeout);

        // The URL works: a transaction left unknown is resolved by the check-back through it.
        var producer = app.Services.GetRequiredService<ITransactionalProducer>();
        var result = await producer.SendInTransactionAsync(_topic, new Order("u-1", 1), (_, _) => Task.FromResult(LocalTransactionState.Unknown));
        Assert.True(result.LeftToCheckBack); // nothing thrown, nothing ended by the producer
        Assert.Equal(LocalTransactionState.Unknown, result.LocalState);
        var ended = await Eventually.UntilAsync(() => broker.Client.GetTransactionAsync(result.TransactionId), t => t.State != MessageState.Prepared, "the check-back to commit");
        Assert.Equal((MessageState.Committed, TransactionResolver.Check), (ended.State, ended.ResolvedBy));
    }

    [Fact]
    public async Task With_a_public_base_address_the_check_url_is_that_address_and_the_route()
    {
        await using var app = await StartAsync(a => a.MapHalfMsgCheck("/halfmsg/check"), new Uri("http://127.0.0.1:1/orders-svc/"));

        Assert.Equal(new Uri("http://127.0.0.1:1/orders-svc/halfmsg/check"), (await broker.Client.GetProducerGroupAsync(_group)).CheckUrl);
    }
}
