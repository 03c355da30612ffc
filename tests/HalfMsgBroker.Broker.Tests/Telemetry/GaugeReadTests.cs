using HalfMsgBroker.Delivery;
using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Telemetry;

/// <summary>
/// The per-subscription gauges (ready, in flight, retrying) read each subscription's delivery counts once per scrape,
/// not once per gauge: with many active brokers each reading is a query.
/// </summary>
public sealed class GaugeReadTests
{
    [Fact]
    public async Task A_scrape_reads_each_subscriptions_delivery_counts_once_for_its_three_gauges()
    {
        var counting = new CountingFigures();
        // A reading serves long enough that other listeners in this test process cannot make it read again.
        await using var root = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Telemetry:DeliveryFiguresMaxAge"] = "00:10:00" });
        await using var factory = root.WithWebHostBuilder(b => b.ConfigureTestServices(s => Decorate(s, counting)));
        using var client = factory.CreateClient();
        var group = "g-" + Guid.NewGuid().ToString("N")[..8];
        string[] topics = ["t1-" + group, "t2-" + group, "t3-" + group];
        await client.Subscribe(group, topics[0]);
        await client.Subscribe(group, topics[1]);
        await client.Send(topics[0]);
        await client.Send(topics[0]);
        // A subscription made after the sends: a reading cached before it no longer serves, so the scrape's figures are fresh.
        await client.Subscribe(group, topics[2]);
        var before = counting.Calls;

        var first = await Scrape(client);
        var second = await Scrape(client);

        Assert.Equal(2, ScrapeText.Value(first, "halfmsg_subscription_ready", $"topic=\"{topics[0]}\""));
        Assert.Equal(0, ScrapeText.Value(first, "halfmsg_subscription_ready", $"topic=\"{topics[1]}\""));
        Assert.Equal(0, ScrapeText.Value(first, "halfmsg_subscription_in_flight", $"topic=\"{topics[2]}\""));
        Assert.Equal(2, ScrapeText.Value(second, "halfmsg_subscription_ready", $"topic=\"{topics[0]}\""));
        // Once per subscription at most (three subscriptions); once per gauge would be nine per scrape.
        Assert.InRange(counting.Calls - before, 0, topics.Length);
    }

    private static async Task<string> Scrape(HttpClient client)
    {
        var answer = await client.GetAsync(new Uri("/metrics", UriKind.Relative));
        answer.EnsureSuccessStatusCode();
        return await answer.Content.ReadAsStringAsync();
    }

    /// <summary>Wraps whichever <see cref="IDeliveryFigures"/> the broker registered (in-memory or the multi-active rows).</summary>
    private static void Decorate(IServiceCollection services, CountingFigures counting)
    {
        var original = services.Last(d => d.ServiceType == typeof(IDeliveryFigures));
        services.Remove(original);
        services.AddSingleton<IDeliveryFigures>(sp =>
        {
            counting.Inner = original.ImplementationInstance as IDeliveryFigures
                ?? (original.ImplementationFactory is { } make ? (IDeliveryFigures)make(sp) : (IDeliveryFigures)ActivatorUtilities.CreateInstance(sp, original.ImplementationType!));
            return counting;
        });
    }

    private sealed class CountingFigures : IDeliveryFigures
    {
        private int _calls;

        public IDeliveryFigures Inner { get; set; } = null!;

        public int Calls => Volatile.Read(ref _calls);

        public QueueCounts Counts(string group, string topic)
        {
            Interlocked.Increment(ref _calls);
            return Inner.Counts(group, topic);
        }

        public LiveDelivery? Find(string group, string topic, Guid messageId) => Inner.Find(group, topic, messageId);
    }
}
