using System.Collections.Concurrent;
using HalfMsgBroker.Tests.Support;
using Xunit.Abstractions;

namespace HalfMsgBroker.Tests.Delivery;

/// <summary>
/// Push slots are shared fairly: 20 subscriptions whose endpoints never answer ask for 320 slots
/// (16 each) of the 256 there are; a healthy subscription must still be pushed to as fast as alone.
/// Before the fair share, the tarpits took all 256 and the healthy one waited for their 60 s timeouts.
/// </summary>
public sealed class FairPushCapacityTests(ITestOutputHelper output)
{
    private const int Samples = 100;

    // Its latency bound is the in-memory queues' (a push taken from memory); with MultiActive each push is a claim in PostgreSQL.
    [InMemoryDeliveriesFact]
    public async Task Twenty_tarpit_subscriptions_do_not_slow_a_healthy_one()
    {
        await using var factory = new BrokerFactory();
        using var c = factory.CreateClient();
        var arrivedAt = new ConcurrentDictionary<string, DateTime>();
        await using var healthy = await TestReceiver.Start((r, _) =>
        {
            arrivedAt[r.Headers["HalfMsg-Message-Id"]] = r.At;
            return Task.FromResult((200, (string?)null));
        });
        await c.Subscribe("healthy", "healthy-orders", new { push = new { url = healthy.Url } });
        // The first round pays for JIT and the first connection (hundreds of ms): measure warm.
        await HealthyP99Async(c, arrivedAt);
        var alone = await HealthyP99Async(c, arrivedAt);

        // Twenty ports, so twenty hosts: the per-host cap (host:port) does not come into it, the fair share does.
        await using var tarpit = await Tarpit.Start(20);
        for (var i = 0; i < tarpit.Urls.Count; i++)
        {
            await c.Subscribe($"tarpit-{i}", $"tarpit-orders-{i}", new { push = new { url = tarpit.Urls[i], timeoutMs = 60000 } });
        }
        for (var i = 0; i < tarpit.Urls.Count; i++)
        {
            for (var n = 0; n < 20; n++) await c.Send($"tarpit-orders-{i}", new { n });
        }
        await Eventually.Until(() => tarpit.Requests >= 200, "the tarpits holding most of the 256 push slots");
        var withTarpits = await HealthyP99Async(c, arrivedAt);

        // Without a fair share the healthy pushes wait for the tarpits' 60 s timeouts: that is what this
        // catches. A p99 of 100 samples on a shared 2-core machine (each send waits for an fsync) swings
        // by hundreds of milliseconds between two rounds (870 ms seen in CI under load), hence a 5 s floor
        // rather than "within 2x": still a twelfth of the wait it catches. Speed is the bench's to measure.
        var allowed = Math.Max(2 * alone, alone + 5000);
        output.WriteLine($"healthy push p99: {alone:F1} ms alone, {withTarpits:F1} ms with {tarpit.Requests} tarpit requests held");
        Assert.True(withTarpits <= allowed,
            $"healthy push p99 {withTarpits:F1} ms with the tarpits holding {tarpit.Requests} requests, {alone:F1} ms alone (allowed {allowed:F1} ms)");
    }

    /// <summary>Sends one message at a time and waits for its push: p99 of send → push arrival, in ms.</summary>
    private static async Task<double> HealthyP99Async(HttpClient c, ConcurrentDictionary<string, DateTime> arrivedAt)
    {
        var latencies = new List<double>(Samples);
        for (var i = 0; i < Samples; i++)
        {
            var sentAt = DateTime.UtcNow;
            var id = await c.Send("healthy-orders", new { i });
            await Eventually.Until(() => arrivedAt.ContainsKey(id), $"healthy push {i}");
            latencies.Add((arrivedAt[id] - sentAt).TotalMilliseconds);
        }
        latencies.Sort();
        return latencies[(int)Math.Ceiling(0.99 * Samples) - 1];
    }
}
