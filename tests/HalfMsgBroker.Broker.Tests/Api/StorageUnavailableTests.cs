using System.Net;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Api;

/// <summary>
/// While LiteDB refuses the journaled changes, sends are still stored (the journal holds them) and
/// queries that need LiteDB's indexes answer 503 with a problem a client can act on, not a 500.
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class StorageUnavailableTests : IAsyncLifetime
{
    private readonly BrokerFactory _factory = new(new Dictionary<string, string?>
    {
        ["Broker:Storage:ApplyDelay"] = "00:00:00.010",
        ["Broker:Storage:UnreadyAfterApplyFailures"] = "00:00:00.200",
    });
    private HttpClient _c = null!;
    private JournaledMessageStore _store = null!;
    private volatile bool _failing;

    public Task InitializeAsync()
    {
        _c = _factory.CreateClient();
        _store = (JournaledMessageStore)_factory.Services.GetRequiredService<IMessageStore>();
        _store.CatchUpTimeout = TimeSpan.FromMilliseconds(300);
        _store.ApplyFault = after =>
        {
            if (!after && _failing) throw new IOException("disk full (test)");
        };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _c.Dispose();
        await _factory.DisposeAsync();
    }

    [Fact]
    public async Task Index_queries_answer_503_and_the_broker_is_not_ready_while_LiteDB_refuses_changes_then_all_recovers()
    {
        _failing = true;
        var sent = await _c.Post("/v1/topics/orders/messages", new { body = new { n = 1 }, keys = new[] { "order-503" } });
        Assert.Equal(HttpStatusCode.Created, sent.Status);
        var id = sent.Json["messageId"]!.GetValue<string>();
        await Eventually.Until(() => _store.ApplyFailingFor > TimeSpan.Zero, "apply failing");

        Assert.Equal(HttpStatusCode.OK, (await _c.Get($"/v1/messages/{id}")).Status); // by id: no index query
        var byKey = await _c.Get("/v1/messages?key=order-503");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, byKey.Status);
        Assert.Equal("storage-unavailable", byKey.Code);
        Assert.Contains("Retry shortly", byKey.Json["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        await Eventually.Until(() => _c.Get("/health/ready"), a => a.Status == HttpStatusCode.ServiceUnavailable, "not ready while LiteDB refuses");

        _failing = false;
        var found = await Eventually.Until(() => _c.Get("/v1/messages?key=order-503"), a => a.Status == HttpStatusCode.OK, "query works again");
        Assert.Equal(id, found.Json["messages"]![0]!["messageId"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await _c.Get("/health/ready")).Status);
    }
}
