using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>
/// Three active brokers on one database (<c>MultiActive</c>), in this process: producers on node 1, consumers on nodes
/// 2 and 3, acks on another node than the receive, wake-ups through <c>LISTEN/NOTIFY</c>, push served by every node.
/// The safety poll is 30 s here, so only a notification can explain a wake-up within seconds.
/// </summary>
public sealed class MultiActiveTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    private static Dictionary<string, string?> Node(string database) => new()
    {
        ["Broker:Storage:Provider"] = "PostgreSql",
        ["ConnectionStrings:HalfMsg"] = database,
        ["Broker:Storage:PostgreSql:MultiActive"] = "true",
        ["Broker:Storage:PostgreSql:DeliverySafetyPoll"] = "00:00:30",
        // Check-back claimed once across brokers is another part, not built yet: every broker would check a half
        // message and write it back over the commit. Producers here commit at once, so no check is needed.
        ["Broker:Transactions:CheckAfter"] = "00:10:00",
    };

    private sealed record Receipt(string MessageId, string Handle, int Attempt, DateTime At, int Node);

    [PostgresFact]
    public async Task Producers_on_one_node_and_consumers_on_two_others_share_every_delivery_once()
    {
        var database = await cluster.CreateDatabaseAsync("multi");
        await using var n1 = new BrokerFactory(Node(database));
        var c1 = n1.CreateClient();
        // Subscriptions made before the other nodes start are loaded by their recovery (reloading on change is another part).
        await c1.Subscribe("g", "orders");
        await using var n2 = new BrokerFactory(Node(database));
        await using var n3 = new BrokerFactory(Node(database));
        var consumers = new[] { n2.CreateClient(), n3.CreateClient() };

        var sent = new List<string>();
        for (var i = 0; i < 30; i++)
        {
            await c1.SendHalf("orders", $"tx-{i}", new { i });
            var commit = await c1.Post($"/v1/transactions/tx-{i}/commit");
            Assert.Equal(HttpStatusCode.OK, commit.Status);
            sent.Add(commit.Json.Str("messageId"));
            sent.Add(await c1.Send("orders", new { plain = i }));
        }

        var receipts = new ConcurrentBag<Receipt>();
        using var done = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var acked = 0;
        async Task Consume(int node)
        {
            var mine = consumers[node];
            var other = consumers[1 - node];
            while (!done.IsCancellationRequested && Volatile.Read(ref acked) < sent.Count)
            {
                var messages = await mine.Receive("g", "orders", max: 8, wait: 1, invisible: 30);
                foreach (var m in messages) receipts.Add(new Receipt(m.Str("messageId"), m.Str("receiptHandle"), m.Int("attempt"), DateTime.UtcNow, node + 2));
                if (messages.Count == 0) continue;
                var ack = await other.Ack("g", [.. messages.Select(m => m.Str("receiptHandle"))]);
                Assert.Equal(HttpStatusCode.OK, ack.Status);
                Assert.Equal(messages.Count, ack.Json.Int("acked"));
                Interlocked.Add(ref acked, messages.Count);
            }
        }
        await Task.WhenAll(Consume(0), Consume(1));

        // Every message received, by one consumer only: every lease (30 s) held until its ack on the other node.
        Assert.Equal(sent.Order(), receipts.Select(r => r.MessageId).Order());
        Assert.All(receipts, r => Assert.Equal(1, r.Attempt));
        Assert.Contains(receipts, r => r.Node == 2);
        Assert.Contains(receipts, r => r.Node == 3);
        foreach (var id in sent) Assert.Equal("acked", await c1.DeliveryState(id, "g"));

        // A long poll waiting on node 3 is woken by a commit on node 1: only the notification can do it within seconds.
        var queue = n3.Services.GetRequiredService<DeliveryRegistry>().Find("g", "orders")!;
        var woken = new List<double>();
        for (var round = 0; round < 5; round++)
        {
            var poll = consumers[1].Receive("g", "orders", max: 1, wait: 20);
            await Eventually.Until(() => queue.WaitingReceivers > 0, "the long poll waiting on node 3");
            var started = Stopwatch.StartNew();
            await c1.SendHalf("orders", $"wake-{round}");
            Assert.Equal(HttpStatusCode.OK, (await c1.Post($"/v1/transactions/wake-{round}/commit")).Status);
            var got = await poll;
            woken.Add(started.Elapsed.TotalMilliseconds);
            Assert.Single(got);
            Assert.Equal(HttpStatusCode.OK, (await consumers[0].Ack("g", got[0].Str("receiptHandle"))).Status);
        }
        Assert.True(woken.Max() < 5000, $"woken after {string.Join(", ", woken.Select(w => $"{w:F0}"))} ms; the safety poll is 30 s");
    }

    [PostgresFact]
    public async Task Push_from_a_subscription_every_node_serves_delivers_each_message_once()
    {
        var database = await cluster.CreateDatabaseAsync("multi-push");
        await using var receiver = await TestReceiver.Answering(200);
        await using var n1 = new BrokerFactory(Node(database));
        var c1 = n1.CreateClient();
        await c1.Subscribe("pushed", "orders", new { push = new { url = receiver.Url } });
        await using var n2 = new BrokerFactory(Node(database));
        await using var n3 = new BrokerFactory(Node(database));
        _ = n2.CreateClient();
        _ = n3.CreateClient();

        var sent = new List<string>();
        for (var i = 0; i < 40; i++) sent.Add(await c1.Send("orders", new { i }));
        await Eventually.Until(() => receiver.Requests.Select(r => r.Body.Str("messageId")).Distinct().Count() == sent.Count, "every message pushed", TimeSpan.FromSeconds(30));
        foreach (var id in sent) await Eventually.Until(() => c1.DeliveryState(id, "pushed"), s => s == "acked", $"{id} acked");

        // Each push is made under a lease (push timeout + 30 s) none of which ran out: no message was pushed twice.
        var pushed = receiver.Requests.Select(r => r.Body.Str("messageId")).ToList();
        Assert.Equal(sent.Order(), pushed.Order());
        Assert.All(receiver.Requests, r => Assert.Equal("1", r.Headers["HalfMsg-Attempt"]));
    }
}
