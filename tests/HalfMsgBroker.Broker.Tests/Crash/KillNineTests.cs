using System.Collections.Concurrent;
using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Crash;

/// <summary>
/// kill -9 of the broker loses nothing it acknowledged: committed-unconsumed, prepared and
/// received-unacked messages are all delivered or checked after a restart on the same data path.
/// </summary>
public sealed class KillNineTests : IAsyncLifetime
{
    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-crash", Guid.NewGuid().ToString("N"));
    private TestReceiver _checker = null!;
    private volatile string _answer = "{\"state\":\"unknown\"}";

    public async Task InitializeAsync() => _checker = await TestReceiver.Start((_, _) => Task.FromResult((200, (string?)_answer)));

    public async Task DisposeAsync()
    {
        await _checker.DisposeAsync();
        BrokerFactory.TryDelete(_dataPath);
    }

    [Theory]
    [InlineData("Process", "00:00:00.100")]
    [InlineData("Fsync", "00:00:00.100")]
    // LiteDB lags the journal by up to 10 s (less where check-back's index queries make it catch up), so more of what was
    // acknowledged comes back from the journal alone (the replay itself is pinned down in JournaledMessageStoreTests).
    [InlineData("Process", "00:00:10")]
    public async Task Nothing_acknowledged_is_lost_across_sigkill(string durability, string applyDelay)
    {
        string[] settings =
        [
            $"--Broker:Storage:Durability={durability}",
            $"--Broker:Storage:ApplyDelay={applyDelay}",
            "--Broker:Transactions:CheckAfter=00:00:00.200",
            "--Broker:Transactions:CheckInterval=00:00:00.200",
            "--Broker:Transactions:MaxChecks=1000",
        ];
        var stored = new ConcurrentBag<string>();
        string preparedTx = "crash-tx-" + durability, ackedId, unackedId;

        await using (var broker = await BrokerProcess.Start(_dataPath, settings))
        {
            var c = broker.Client;
            await c.Put("/v1/producer-groups/order-service", new { checkUrl = _checker.Url });
            await c.Subscribe("inventory", "orders");
            await c.SendHalf("orders", preparedTx);

            ackedId = await c.Send("orders", new { n = "acked" });
            unackedId = await c.Send("orders", new { n = "unacked" });
            // Many active brokers keep leases in the database, so one survives the restart: short, it runs out and the
            // unacked message comes back as it does when a single broker forgets its leases.
            var received = await c.Receive("inventory", "orders", max: 2, invisible: TestStorage.IsMultiActive ? 3 : 3600);
            Assert.Equal(2, received.Count);
            Assert.Equal(1, (await c.Ack("inventory", received.Single(m => m.Str("messageId") == ackedId)!.Str("receiptHandle"))).Json.Int("acked"));
            await Eventually.Until(() => _checker.Requests.Count >= 1, "a first (unknown) check before the crash");

            // Sends race the kill: every one answered 201 must survive it.
            using var stop = new CancellationTokenSource();
            var senders = Enumerable.Range(0, 8).Select(async worker =>
            {
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    try
                    {
                        var answer = await c.Post("/v1/topics/orders/messages", new { body = new { worker, i } });
                        if (answer.Status == HttpStatusCode.Created) stored.Add(answer.Json.Str("messageId"));
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
            await Eventually.Until(() => stored.Count >= 100, "sends under way");
            broker.Kill();
            await stop.CancelAsync();
            await Task.WhenAll(senders);
        }

        _answer = "{\"state\":\"commit\"}";
        await using var restarted = await BrokerProcess.Start(_dataPath, settings);
        var r = restarted.Client;

        foreach (var id in stored) Assert.Equal(HttpStatusCode.OK, (await r.Get($"/v1/messages/{id}")).Status);
        var tx = await Eventually.Until(() => r.Transaction(preparedTx), t => t.Str("state") != "prepared", "check-back after restart");
        Assert.Equal(("committed", "check"), (tx.Str("state"), tx.Str("resolvedBy")));

        var expected = new HashSet<string>(stored) { unackedId, tx.Str("messageId") };
        var delivered = new HashSet<string>();
        await Eventually.Until(async () =>
        {
            foreach (var m in await r.Receive("inventory", "orders", max: 100))
            {
                delivered.Add(m!.Str("messageId"));
                await r.Ack("inventory", m.Str("receiptHandle"));
            }
            return expected.IsSubsetOf(delivered);
        }, ok => ok, $"all {expected.Count} unconsumed messages delivered after the restart");

        Assert.DoesNotContain(ackedId, delivered);
        Assert.Equal("acked", await r.DeliveryState(ackedId, "inventory"));
    }
}
