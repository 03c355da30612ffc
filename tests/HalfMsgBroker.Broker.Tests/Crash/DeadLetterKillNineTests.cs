using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Crash;

/// <summary>
/// A dead-lettering is stored before it is answered or believed: a kill -9 right after it, with
/// LiteDB far behind the journal, still finds the message among the dead letters after a restart.
/// </summary>
public sealed class DeadLetterKillNineTests : IDisposable
{
    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-crash", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_dataPath);

    [Fact]
    public async Task Dead_letters_from_a_nack_and_a_visibility_timeout_survive_sigkill()
    {
        string[] settings = ["--Broker:Storage:ApplyDelay=00:00:10"];
        string nackedId, timedOutId;
        await using (var broker = await BrokerProcess.Start(_dataPath, settings))
        {
            var c = broker.Client;
            await c.Subscribe("billing", "invoices", new { maxAttempts = 1 });
            nackedId = await c.Send("invoices", new { n = "nacked" });
            timedOutId = await c.Send("invoices", new { n = "timed-out" });
            var received = await c.Receive("billing", "invoices", max: 2, invisible: 1);
            Assert.Equal(2, received.Count);

            var nack = await c.Post("/v1/consumer-groups/billing/nack",
                new { receiptHandle = received.Single(m => m!.Str("messageId") == nackedId)!.Str("receiptHandle") });
            Assert.Equal(HttpStatusCode.OK, nack.Status);
            Assert.Equal("deadLettered", nack.Json.Str("state"));
            // The time-out's dead-lettering shows in memory only after it is stored.
            await Eventually.Until(() => c.DeliveryState(timedOutId, "billing"), s => s == "deadLettered", "time-out dead-lettered");
            broker.Kill();
        }

        await using var restarted = await BrokerProcess.Start(_dataPath, settings);
        var dead = (await restarted.Client.Get("/v1/consumer-groups/billing/dead-letters")).Json["deadLetters"]!.AsArray()
            .Select(d => d!.Str("messageId")).ToHashSet();
        Assert.Equal(new HashSet<string> { nackedId, timedOutId }, dead);
        Assert.Empty(await restarted.Client.Receive("billing", "invoices"));
    }
}
