using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Client.Tests;

/// <summary>The HTTP pipeline against a scripted handler: what is retried, with which headers, and how errors map.</summary>
public sealed class ClientPipelineTests
{
    private sealed class ScriptedHandler(Func<HttpRequestMessage, string, int, HttpResponseMessage> respond) : HttpMessageHandler
    {
        public List<(HttpRequestMessage Request, string Body)> Seen { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = request.Content is null ? string.Empty : await request.Content.ReadAsStringAsync(cancellationToken);
            lock (Seen)
            {
                Seen.Add((request, body));
                return respond(request, body, Seen.Count);
            }
        }
    }

    private static (HalfMsgClient Client, ServiceProvider Services) Build(ScriptedHandler handler)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = new Uri("http://broker.test");
            o.RetryDelay = TimeSpan.FromMilliseconds(1);
        }).HttpClient.ConfigurePrimaryHttpMessageHandler(() => handler);
        var provider = services.BuildServiceProvider();
        return (provider.GetRequiredService<HalfMsgClient>(), provider);
    }

    private static HttpResponseMessage Json(HttpStatusCode status, string json, string mediaType = "application/json") =>
        new(status) { Content = new StringContent(json, Encoding.UTF8, mediaType) };

    private static HttpResponseMessage Unavailable() =>
        Json(HttpStatusCode.ServiceUnavailable, """{"type":"https://halfmsgbroker.dev/problems/internal-error","status":503,"detail":"busy","code":"unavailable"}""", "application/problem+json");

    [Fact]
    public async Task Plain_send_is_retried_with_the_same_generated_idempotency_key()
    {
        var handler = new ScriptedHandler((_, _, n) => n < 3 ? Unavailable() : Json(HttpStatusCode.Created, """{"messageId":"m-1","state":"committed"}"""));
        var (client, services) = Build(handler);
        await using var _ = services;

        var result = await client.SendAsync("orders", new { OrderId = 42 });

        Assert.Equal("m-1", result.MessageId);
        Assert.Equal(MessageState.Committed, result.State);
        Assert.Equal(3, handler.Seen.Count);
        var keys = handler.Seen.Select(s => s.Request.Headers.GetValues(HalfMsgHeaders.IdempotencyKey).Single()).Distinct().ToList();
        Assert.Single(keys);
        Assert.All(handler.Seen, s => Assert.Equal("""{"body":{"orderId":42}}""", s.Body));
    }

    [Fact]
    public async Task Raw_half_message_without_transaction_id_gets_one_and_keeps_it_across_retries()
    {
        var handler = new ScriptedHandler((_, body, n) => n < 2
            ? Unavailable()
            : Json(HttpStatusCode.Created, $$"""{"messageId":"m-1","transactionId":"{{JsonDocument.Parse(body).RootElement.GetProperty("transactionId").GetString()}}","state":"prepared"}"""));
        var (client, services) = Build(handler);
        await using var _ = services;

        var result = await client.Api.SendHalfMsgAsync("orders", new SendHalfMsgRequest("order-service", JsonSerializer.SerializeToElement(new { a = 1 })));

        Assert.Equal(2, handler.Seen.Count);
        var ids = handler.Seen.Select(s => JsonDocument.Parse(s.Body).RootElement.GetProperty("transactionId").GetString()).Distinct().ToList();
        Assert.Single(ids);
        Assert.False(string.IsNullOrEmpty(ids[0]));
        Assert.Equal(ids[0], result.TransactionId);
        Assert.Equal(MessageState.Prepared, result.State);
    }

    [Fact]
    public async Task Receive_and_ack_are_not_retried_and_problems_become_HalfMsgException()
    {
        var handler = new ScriptedHandler((_, _, _) => Unavailable());
        var (client, services) = Build(handler);
        await using var _ = services;

        var receive = await Assert.ThrowsAsync<HalfMsgException>(() => client.ReceiveAsync("g", "orders"));
        Assert.Single(handler.Seen);
        Assert.Equal(503, receive.Status);
        Assert.Equal("unavailable", receive.Code);
        Assert.Equal("busy", receive.Detail);
        Assert.True(receive.IsTransient);

        await Assert.ThrowsAsync<HalfMsgException>(() => client.Api.AckAsync("g", new AckRequest(["h"])));
        Assert.Equal(2, handler.Seen.Count);

        await Assert.ThrowsAsync<HalfMsgException>(() => client.CommitAsync("t-1"));
        Assert.Equal(2 + 4, handler.Seen.Count); // commit is idempotent: 1 try + 3 retries
    }

    [Fact]
    public async Task Conflict_is_not_retried_and_carries_code_detail_and_errors()
    {
        var handler = new ScriptedHandler((_, _, _) => Json(
            HttpStatusCode.Conflict,
            """{"type":"https://halfmsgbroker.dev/problems/transaction-conflict","title":"Conflict","status":409,"detail":"already rolled back","code":"transaction-conflict","errors":{"state":["rolledBack"]}}""",
            "application/problem+json"));
        var (client, services) = Build(handler);
        await using var _ = services;

        var ex = await Assert.ThrowsAsync<HalfMsgException>(() => client.CommitAsync("t-1"));
        Assert.Single(handler.Seen);
        Assert.Equal(409, ex.Status);
        Assert.Equal("transaction-conflict", ex.Code);
        Assert.Equal("already rolled back", ex.Detail);
        Assert.False(ex.IsTransient);
        Assert.Equal(["rolledBack"], ex.Errors!["state"]);
    }
}
