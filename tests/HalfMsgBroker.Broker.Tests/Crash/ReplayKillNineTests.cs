using System.Globalization;
using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Crash;

/// <summary>
/// A replay and a retry-now are stored before they are answered: a kill -9 right after them, with LiteDB
/// far behind the journal, still delivers the replayed message and the retry at once after a restart.
/// </summary>
public sealed class ReplayKillNineTests : IDisposable
{
    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-crash", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_dataPath);

    [Fact]
    public async Task A_replay_and_a_retry_now_survive_sigkill()
    {
        string[] settings = ["--Broker:Storage:ApplyDelay=00:00:10"];
        string ackedId, nackedId;
        await using (var broker = await BrokerProcess.Start(_dataPath, settings))
        {
            var c = broker.Client;
            await c.Subscribe("billing", "invoices");
            var from = DateTime.UtcNow.AddSeconds(-1).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
            ackedId = await c.Send("invoices", new { n = "acked" });
            nackedId = await c.Send("invoices", new { n = "nacked" });
            var received = await Eventually.Until(() => c.Receive("billing", "invoices", max: 2, wait: 1), r => r.Count == 2, "both messages");
            Assert.Equal(HttpStatusCode.OK, (await c.Ack("billing", received.Single(m => m!.Str("messageId") == ackedId)!.Str("receiptHandle"))).Status);
            var nack = await c.Post("/v1/consumer-groups/billing/nack",
                new { receiptHandle = received.Single(m => m!.Str("messageId") == nackedId)!.Str("receiptHandle"), retryAfterSeconds = 3600 });
            Assert.Equal("retrying", nack.Json.Str("state"));

            Assert.Equal(1, (await c.Post("/v1/consumer-groups/billing/subscriptions/invoices/replay", new { from })).Json.Int("replayed"));
            Assert.Equal(1, (await c.Post("/v1/consumer-groups/billing/subscriptions/invoices/retry-now", new { })).Json.Int("retried"));
            broker.Kill();
        }

        await using var restarted = await BrokerProcess.Start(_dataPath, settings);
        var again = await Eventually.Until(() => restarted.Client.Receive("billing", "invoices", max: 2, wait: 1), r => r.Count == 2, "both messages after the restart");
        Assert.Equal(new[] { ackedId, nackedId }.Order(), again.Select(m => m!.Str("messageId")).Order());
    }
}
