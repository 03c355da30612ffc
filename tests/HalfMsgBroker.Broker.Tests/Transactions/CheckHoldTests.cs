using System.Collections.Concurrent;
using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Transactions;

/// <summary>
/// Due checks of a group with all its calls out are held in memory and started as its calls end, at
/// the pace the producer answers. How fast a backlog drains is the benchmark's to say (workload 4 at
/// the default 4 in flight: 26 → 218 checks/s, bench/results/2026-11-30-check-back-holds.md).
/// </summary>
public sealed class CheckHoldTests
{
    private const string Commit = "{\"state\":\"commit\"}";

    [Fact]
    public async Task A_held_check_starts_when_its_groups_call_ends_not_when_its_hold_runs_out()
    {
        // The test factory's check interval is 200 ms, so a hold moves a check's index entry 10 s (its floor).
        await using var factory = new BrokerFactory();
        using var c = factory.CreateClient();
        using var firstMayAnswer = new SemaphoreSlim(0);
        var arrived = new ConcurrentDictionary<string, DateTime>();
        await using var producer = await TestReceiver.Start(async (r, _) =>
        {
            var tx = r.Body.Str("transactionId");
            arrived[tx] = DateTime.UtcNow;
            if (tx == "first") await firstMayAnswer.WaitAsync(TimeSpan.FromSeconds(60));
            return (200, Commit);
        });
        Assert.Equal(HttpStatusCode.Created,
            (await c.Put("/v1/producer-groups/one-at-a-time", new { checkUrl = producer.Url, maxChecksInFlight = 1, checkTimeoutMs = 60000 })).Status);

        await c.SendHalf("orders", "first", group: "one-at-a-time");
        await Eventually.Until(() => arrived.ContainsKey("first"), "the first check, which the producer holds");
        await c.SendHalf("orders", "second", group: "one-at-a-time");
        // Due while the group's one call is out: held, its index entry moved 10 s on.
        var held = await Eventually.Until(
            () => c.Transaction("second"),
            t => DateTime.Parse(t.Str("nextCheckAt"), System.Globalization.CultureInfo.InvariantCulture).ToUniversalTime() > DateTime.UtcNow.AddSeconds(5),
            "the second check moved out of the way while the first is out");
        Assert.Equal(0, held.Int("checkCount"));

        var answeredAt = DateTime.UtcNow;
        firstMayAnswer.Release();
        // Well before its hold would bring it back (10 s): it started because the first call ended.
        await Eventually.Until(() => arrived.ContainsKey("second"), "the second check once the first was answered", TimeSpan.FromSeconds(5));
        Assert.True(arrived["second"] - answeredAt < TimeSpan.FromSeconds(5), $"second check {(arrived["second"] - answeredAt).TotalMilliseconds:F0} ms after the first answer");
        Assert.Equal("committed", (await Eventually.Until(() => c.Transaction("second"), t => t.Str("state") == "committed", "the second committed")).Str("state"));
    }

    [Fact]
    public async Task A_backlog_at_the_in_flight_limit_is_checked_exactly_once()
    {
        const int backlog = 500;
        await using var factory = new BrokerFactory();
        using var c = factory.CreateClient();
        var calls = new ConcurrentDictionary<string, int>();
        await using var producer = await TestReceiver.Start(async (r, _) =>
        {
            calls.AddOrUpdate(r.Body.Str("transactionId"), 1, (_, n) => n + 1);
            await Task.Delay(10);
            return (200, Commit);
        });
        Assert.Equal(HttpStatusCode.Created, (await c.Put("/v1/producer-groups/fast", new { checkUrl = producer.Url })).Status);

        for (var batch = 0; batch < backlog / 100; batch++)
        {
            var items = Enumerable.Range(0, 100).Select(i => new
            {
                topic = "orders", producerGroup = "fast", transactionId = $"tx-{batch * 100 + i}", body = new { i }, checkImmunitySeconds = 1,
            }).ToArray();
            var answer = await c.Post("/v1/half-messages/batch", new { items });
            Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        }

        await Eventually.Until(() => calls.Count == backlog, "every transaction checked", TimeSpan.FromMinutes(2));
        Assert.All(calls, call => Assert.Equal(1, call.Value));
        Assert.Equal(backlog, producer.Requests.Count);
        // The answers are stored after the calls return: none is left prepared once they are.
        await Eventually.Until(
            async () => (await c.Get("/v1/transactions?state=prepared&producerGroup=fast&limit=1")).Json["transactions"]!.AsArray().Count,
            n => n == 0, "every transaction committed by its check");
    }
}
