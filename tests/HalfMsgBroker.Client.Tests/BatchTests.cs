using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Client.Tests;

/// <summary>The batch endpoints through the SDK: round trips against the broker, and retry safety of the raw calls.</summary>
[Collection(BrokerCollection.Name)]
public sealed class BatchTests(BrokerFixture broker)
{
    private static JsonElement Json(object value) => JsonSerializer.SerializeToElement(value);

    [Fact]
    public async Task Batch_sends_half_messages_commits_and_rollbacks_round_trip()
    {
        var topic = Names.Unique("batch");
        var group = Names.Unique("batch-consumers");
        await broker.Api.PutSubscriptionAsync(group, topic, new SubscriptionRequest());

        var plain = await broker.Client.SendBatchAsync([new SendMessageBatchItem(topic, Json(new { n = 1 })), new SendMessageBatchItem(topic, Json(new { n = 2 }), Tag: "b")]);
        Assert.Equal([BatchSendStatus.Created, BatchSendStatus.Created], plain.Results.Select(r => r.Status));
        Assert.All(plain.Results, r => Assert.Equal(MessageState.Committed, r.State));

        var halves = await broker.Client.SendHalfBatchAsync(Enumerable.Range(0, 3).Select(i => new HalfMsgBatchItem(topic, "batch-producers", Json(new { n = 10 + i }))));
        Assert.All(halves.Results, r => Assert.Equal((BatchSendStatus.Created, MessageState.Prepared), (r.Status, r.State)));
        var txs = halves.Results.Select(r => r.TransactionId!).ToList();
        Assert.Equal(3, txs.Distinct().Count());

        var committed = await broker.Client.CommitBatchAsync(txs.Take(2));
        Assert.Equal([BatchEndStatus.Committed, BatchEndStatus.Committed], committed.Results.Select(r => r.Status));
        var rolledBack = await broker.Client.RollbackBatchAsync([txs[0], txs[2], "no-such-" + Guid.NewGuid().ToString("N")]);
        Assert.Equal([BatchEndStatus.Conflict, BatchEndStatus.RolledBack, BatchEndStatus.NotFound], rolledBack.Results.Select(r => r.Status));
        Assert.Equal(MessageState.Committed, rolledBack.Results[0].State);
        Assert.Equal("transaction-conflict", rolledBack.Results[0].Code);

        var received = await Eventually.UntilAsync(
            async () => (await broker.Client.ReceiveAsync(group, topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(1), MaxMessages = 10 })).ToList(),
            batch => batch.Count == 4,
            "the two plain and two committed messages");
        Assert.Equal([1, 2, 10, 11], received.Select(m => m.Body.GetProperty("n").GetInt32()).Order());
    }

    [Fact]
    public async Task A_raw_batch_send_gets_an_idempotency_key_per_item_and_keeps_them_across_retries()
    {
        var seen = new List<string>();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = new Uri("http://broker.test");
            o.RetryDelay = TimeSpan.FromMilliseconds(1);
        }).HttpClient.ConfigurePrimaryHttpMessageHandler(() => new ScriptedHandler(seen));
        await using var provider = services.BuildServiceProvider();
        var api = provider.GetRequiredService<IHalfMsgApi>();

        var result = await api.SendMessageBatchAsync(new SendMessageBatchRequest([
            new SendMessageBatchItem("orders", Json(new { a = 1 })),
            new SendMessageBatchItem("orders", Json(new { a = 2 }), IdempotencyKey: "mine"),
        ]));

        Assert.Equal(BatchSendStatus.Created, Assert.Single(result.Results).Status);
        Assert.Equal(2, seen.Count);
        Assert.Single(seen.Distinct());
        var keys = JsonDocument.Parse(seen[0]).RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("idempotencyKey").GetString()).ToList();
        Assert.False(string.IsNullOrEmpty(keys[0]));
        Assert.Equal("mine", keys[1]);
    }

    /// <summary>Answers 503 to the first request and 200 to the next, remembering each body.</summary>
    private sealed class ScriptedHandler(List<string> seen) : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            seen.Add(await request.Content!.ReadAsStringAsync(cancellationToken));
            return seen.Count == 1
                ? new HttpResponseMessage(HttpStatusCode.ServiceUnavailable)
                {
                    Content = new StringContent("""{"status":503,"detail":"busy","code":"unavailable"}""", Encoding.UTF8, "application/problem+json"),
                }
                : new HttpResponseMessage(HttpStatusCode.OK)
                {
                    Content = new StringContent("""{"results":[{"messageId":"m-1","state":"committed","status":"created"}]}""", Encoding.UTF8, "application/json"),
                };
        }
    }
}
