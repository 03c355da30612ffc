using System.Collections.Concurrent;
using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Crash;

/// <summary>
/// kill -9 while multi-message transactions are being prepared and committed: after the restart
/// every acknowledged transaction is there with all its messages, every acknowledged commit
/// delivers all of them, and no transaction is half committed — each prepare and each commit is one
/// journal frame, replayed whole or not at all.
/// </summary>
public sealed class MultiMessageTransactionKillNineTests : IDisposable
{
    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-crash", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_dataPath);

    [Theory]
    [InlineData("00:00:00.100")]
    // LiteDB 10 s behind: the transactions come back from the journal alone.
    [InlineData("00:00:10")]
    public async Task Every_acknowledged_transaction_comes_back_whole(string applyDelay)
    {
        string[] settings = [$"--Broker:Storage:ApplyDelay={applyDelay}"];
        var prepared = new ConcurrentDictionary<string, string[]>();
        var committed = new ConcurrentDictionary<string, bool>();

        await using (var broker = await BrokerProcess.Start(_dataPath, settings))
        {
            var c = broker.Client;
            await c.Subscribe("fulfilment", "orders");
            await c.Subscribe("fulfilment", "stock");

            using var stop = new CancellationTokenSource();
            var producers = Enumerable.Range(0, 4).Select(async worker =>
            {
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    var tx = $"crash-multi-{worker}-{i}";
                    try
                    {
                        var sent = await c.Post("/v1/transactions", new
                        {
                            producerGroup = "order-service", transactionId = tx, checkImmunitySeconds = 3600,
                            messages = new object[]
                            {
                                new { topic = "orders", body = new { tx, part = 1 } },
                                new { topic = "stock", body = new { tx, part = 2 } },
                                new { topic = "orders", body = new { tx, part = 3 } },
                            },
                        });
                        if (sent.Status != HttpStatusCode.Created) continue;
                        prepared[tx] = sent.Json["messages"]!.AsArray().Select(m => m.Str("messageId")).ToArray();
                        // Every other one is committed; the rest stay prepared across the crash.
                        if (i % 2 == 0 && (await c.Post($"/v1/transactions/{tx}/commit")).Status == HttpStatusCode.OK) committed[tx] = true;
                    }
                    catch (HttpRequestException)
                    {
                        return;
                    }
                    catch (TaskCanceledException)
                    {
                        return;
                    }
                }
            }).ToArray();
            await Eventually.Until(() => committed.Count >= 20, "transactions under way");
            broker.Kill();
            await stop.CancelAsync();
            await Task.WhenAll(producers);
        }

        await using var restarted = await BrokerProcess.Start(_dataPath, settings);
        var r = restarted.Client;
        var expected = new HashSet<string>();
        foreach (var (tx, ids) in prepared)
        {
            var view = await r.Transaction(tx);
            var states = view["messages"]!.AsArray().Select(m => m.Str("state")).ToArray();
            Assert.Equal(ids, view["messages"]!.AsArray().Select(m => m.Str("messageId")));
            // All or nothing: an unacknowledged commit may have landed, but wholly.
            Assert.True(states.All(s => s == view.Str("state")), $"{tx}: {view.Str("state")} with messages {string.Join(", ", states)}");
            if (committed.ContainsKey(tx)) Assert.Equal("committed", view.Str("state"));
            else Assert.Contains(view.Str("state"), new[] { "prepared", "committed" });
            if (view.Str("state") == "committed") expected.UnionWith(ids);
        }

        var delivered = new HashSet<string>();
        await Eventually.Until(async () =>
        {
            foreach (var topic in new[] { "orders", "stock" })
            {
                foreach (var m in await r.Receive("fulfilment", topic, max: 100))
                {
                    delivered.Add(m!.Str("messageId"));
                    await r.Ack("fulfilment", m.Str("receiptHandle"));
                }
            }
            return expected.IsSubsetOf(delivered);
        }, ok => ok, $"all {expected.Count} messages of committed transactions delivered after the restart");
        Assert.Subset(expected, delivered);
        // Nothing of a transaction still prepared was delivered.
        Assert.Empty(delivered.Except(expected));
    }
}
