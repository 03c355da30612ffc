using System.Net;

namespace HalfMsgBroker.Client.Tests;

/// <summary><see cref="HalfMsgClientOptions.UseHttp2"/> against a broker listening with HTTP/2 only (h2c).</summary>
public sealed class Http2Tests(H2cBrokerFixture broker) : IClassFixture<H2cBrokerFixture>
{
    [Fact]
    public async Task UseHttp2_runs_a_transaction_and_its_delivery_over_h2c()
    {
        var topic = Names.Unique("h2-orders");
        var group = Names.Unique("h2-stock");
        await broker.Api.PutSubscriptionAsync(group, topic, new SubscriptionRequest());

        var half = await broker.Client.SendHalfAsync(topic, Names.Unique("h2-producers"), new Order("h2-1", 2));
        Assert.Equal(MessageState.Committed, (await broker.Client.CommitAsync(half.TransactionId)).State);

        var received = Assert.Single(await broker.Client.ReceiveAsync(group, topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(5) }));
        Assert.Equal(half.MessageId, received.MessageId);
        Assert.True(await received.AckAsync());

        // The listener speaks nothing but HTTP/2, so the calls above already went over it; check the version too.
        using var response = await broker.CreateHttpClient().GetAsync(new Uri("health/live", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version20, response.Version);
    }
}

/// <summary>Without <see cref="HalfMsgClientOptions.UseHttp2"/> the client stays on HTTP/1.1.</summary>
[Collection(BrokerCollection.Name)]
public sealed class Http1DefaultTests(BrokerFixture broker)
{
    [Fact]
    public async Task The_client_uses_HTTP_1_1_by_default()
    {
        using var response = await broker.CreateHttpClient().GetAsync(new Uri("health/live", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version11, response.Version);
    }
}
