using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Access;

/// <summary>Rate limits per key, the cap on open long polls, and quotas on what the broker holds.</summary>
public sealed class LimitsTests
{
    [Fact]
    public async Task Requests_over_the_rate_are_429_with_retry_after_per_key()
    {
        await using var broker = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:RateLimits:RequestsPerSecond"] = "0.5",
            ["Broker:RateLimits:Burst"] = "3",
        });
        using var admin = broker.CreateClient();
        var (_, keyA) = await Keys.Create(admin, "a", "producer", topics: ["t"]);
        var (_, keyB) = await Keys.Create(admin, "b", "producer", topics: ["t"]);
        using var a = broker.CreateClient(keyA);
        using var b = broker.CreateClient(keyB);

        var answers = new List<Http.Answer>();
        for (var i = 0; i < 4; i++) answers.Add(await a.Post("/v1/topics/t/messages", new { body = i }));
        Assert.All(answers.Take(3), x => Assert.Equal(HttpStatusCode.Created, x.Status));
        Assert.Equal((HttpStatusCode)429, answers[3].Status);
        Assert.Equal("rate-limited", answers[3].Code);

        using var raw = await a.GetAsync(new Uri("/v1/transactions", UriKind.Relative));
        Assert.Equal((HttpStatusCode)429, raw.StatusCode);
        Assert.True(raw.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), $"Retry-After: {raw.Headers.RetryAfter}");

        // Another key has its own budget; health is never limited.
        Assert.Equal(HttpStatusCode.Created, (await b.Post("/v1/topics/t/messages", new { body = 1 })).Status);
        Assert.Equal(HttpStatusCode.OK, (await a.Get("/health/live")).Status);
    }

    [Fact]
    public async Task A_key_may_hold_only_so_many_long_polls_open()
    {
        await using var broker = new BrokerFactory(new Dictionary<string, string?> { ["Broker:RateLimits:MaxConcurrentLongPolls"] = "1" });
        using var admin = broker.CreateClient();
        await admin.Subscribe("g", "t");
        var (_, key) = await Keys.Create(admin, "c", "consumer", consumerGroups: ["g"]);
        using var consumer = broker.CreateClient(key);

        // A long wait, ended by a message below: the poll must still be open however slow the machine is.
        Task<Http.Answer> Poll() => consumer.Post("/v1/consumer-groups/g/topics/t/receive", new { waitSeconds = 30 });
        var first = Poll();
        // Probe until a second poll is refused. A probe can win the one permit just as the first poll
        // arrives (the first is then refused and ends at once): start the first again and keep probing.
        var second = await Eventually.Until(
            () =>
            {
                if (first.IsCompleted) first = Poll();
                return consumer.Post("/v1/consumer-groups/g/topics/t/receive", new { waitSeconds = 0 });
            },
            a => a.Status == (HttpStatusCode)429, "second long poll refused");
        Assert.Equal("rate-limited", second.Code);
        Assert.Contains("MaxConcurrentLongPolls", second.Json.Str("detail"), StringComparison.Ordinal);
        Assert.False(first.IsCompleted);

        // The admin key is another partition, and the first poll ends normally when a message arrives.
        Assert.Equal(HttpStatusCode.OK, (await admin.Post("/v1/consumer-groups/g/topics/t/receive", new { waitSeconds = 0 })).Status);
        await admin.Send("t");
        var woken = await first;
        Assert.Equal(HttpStatusCode.OK, woken.Status);
        Assert.Single(woken.Json["messages"]!.AsArray());
        Assert.Equal(HttpStatusCode.OK, (await consumer.Post("/v1/consumer-groups/g/topics/t/receive", new { waitSeconds = 0 })).Status);
    }

    [Fact]
    public async Task Quotas_refuse_new_topics_subscriptions_and_producer_groups_past_the_limit()
    {
        await using var broker = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:Quotas:MaxTopics"] = "2",
            ["Broker:Quotas:MaxSubscriptions"] = "1",
            ["Broker:Quotas:MaxProducerGroups"] = "1",
        });
        using var c = broker.CreateClient();
        await c.Send("t1");
        await c.Send("t2");
        var third = await c.Post("/v1/topics/t3/messages", new { body = 1 });
        Assert.Equal((HttpStatusCode)429, third.Status);
        Assert.Equal("quota-exceeded", third.Code);
        Assert.Contains("Broker:Quotas:MaxTopics", third.Json.Str("detail"), StringComparison.Ordinal);
        await c.Send("t1"); // existing topics keep working

        await c.Subscribe("g", "t1");
        Assert.Equal(HttpStatusCode.OK, (await c.Put("/v1/consumer-groups/g/subscriptions/t1", new { maxAttempts = 3 })).Status);
        Assert.Equal("quota-exceeded", (await c.Put("/v1/consumer-groups/g/subscriptions/t2", new { })).Code);

        Assert.Equal(HttpStatusCode.Created, (await c.Put("/v1/producer-groups/p1", new { })).Status);
        Assert.Equal(HttpStatusCode.OK, (await c.Put("/v1/producer-groups/p1", new { checkTimeoutMs = 500 })).Status);
        Assert.Equal("quota-exceeded", (await c.Put("/v1/producer-groups/p2", new { })).Code);
        Assert.Equal(HttpStatusCode.NotFound, (await c.Get("/v1/producer-groups/p2")).Status);
    }
}
