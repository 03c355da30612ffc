using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using HalfMsgBroker.Tests.Support;
using HalfMsgBroker.Transactions;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace HalfMsgBroker.Tests.Transactions;

/// <summary>
/// A fast producer's backlog of due checks at the default 4 calls in flight is held in memory and
/// started as its calls end: every transaction is checked exactly once, and each waiting check is
/// moved out of the way about once. How fast the backlog drains is the benchmark's to say (workload 4:
/// 26 → 218 checks/s with 10 K due at the default limit, bench/results/2026-11-30-check-back-holds.md).
/// </summary>
public sealed partial class CheckHoldTests(ITestOutputHelper output)
{
    [System.Text.RegularExpressions.GeneratedRegex(@"^Deferred (\d+) due checks")]
    private static partial System.Text.RegularExpressions.Regex DeferredCountRegex();

    private static readonly System.Text.RegularExpressions.Regex DeferredCount = DeferredCountRegex();

    private const int Backlog = 2_000;

    [Fact]
    public async Task A_fast_groups_backlog_is_held_not_planned_far_ahead_and_each_check_is_made_once()
    {
        // The test factory's check interval is 200 ms, so a hold moves a check 10 s (its floor).
        await using var broker = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Logging:LogLevel:HalfMsgBroker.Transactions.CheckBackService"] = "Debug",
        });
        var log = new ListLogger();
        await using var factory = broker.WithWebHostBuilder(b => b.ConfigureLogging(l => l.AddProvider(new OneCategory(typeof(CheckBackService).FullName!, log))));
        using var c = factory.CreateClient();
        var calls = new ConcurrentDictionary<string, int>();
        await using var producer = await TestReceiver.Start(async (r, _) =>
        {
            calls.AddOrUpdate(r.Body.Str("transactionId"), 1, (_, n) => n + 1);
            await Task.Delay(20);
            return (200, "{\"state\":\"commit\"}");
        });
        Assert.Equal(HttpStatusCode.Created, (await c.Put("/v1/producer-groups/fast", new { checkUrl = producer.Url })).Status);

        for (var batch = 0; batch < Backlog / 100; batch++)
        {
            var items = Enumerable.Range(0, 100).Select(i => new
            {
                topic = "orders", producerGroup = "fast", transactionId = $"tx-{batch * 100 + i}", body = new { i }, checkImmunitySeconds = 1,
            }).ToArray();
            var answer = await c.Post("/v1/half-messages/batch", new { items });
            Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        }
        await Eventually.Until(() => calls.Count >= 50, "the backlog's first checks");

        await Eventually.Until(() => calls.Count == Backlog, "every transaction checked", TimeSpan.FromMinutes(3));
        Assert.All(calls, call => Assert.Equal(1, call.Value));
        Assert.True(producer.Requests.Count == Backlog, $"{producer.Requests.Count} check calls for {Backlog} transactions");

        // Each waiting check is moved out of the way about once (held, or planned and then held), not
        // every time it comes due while the group is busy: planned, a check that came due early went to
        // the end of the whole plan again, and the backlog was rewritten over and over.
        var moves = log.Lines.Select(l => DeferredCount.Match(l.Message)).Where(m => m.Success)
            .Sum(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
        output.WriteLine($"{moves} moves of waiting checks for {Backlog} transactions");
        Assert.True(moves <= Backlog * 3 / 2, $"{moves} moves of waiting checks for {Backlog} transactions");
    }
}

/// <summary>Hands one category's logger to a <see cref="ListLogger"/>.</summary>
internal sealed class OneCategory(string category, ListLogger log) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) =>
        categoryName == category ? log : Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    public void Dispose()
    {
    }
}
