using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using HalfMsgBroker.Tests.Support;
using Xunit.Abstractions;

namespace HalfMsgBroker.Tests.Transactions;

/// <summary>
/// Check-back flow control per producer group (issue 16 item 3): a group's backlog of due checks
/// reaches its producer at most maxChecksInFlight at a time and maxChecksPerSecond per second, and
/// does not hold up another group's due checks.
/// </summary>
public sealed class CheckFlowControlTests(ITestOutputHelper output)
{
    private const string Commit = "{\"state\":\"commit\"}";
    private const int Backlog = 10_000;
    private const int SlowInFlight = 4;
    private const int SlowPerSecond = 10;

    [SkippableFact]
    public async Task A_slow_groups_backlog_keeps_its_limits_and_another_groups_checks_run_on_time()
    {
        // Its lateness bound is this process's pace of spreading 10,000 due checks; with many active brokers every begin-check
        // reads its row FOR UPDATE, a round trip each, so the spreading is slower and the bound is not theirs to meet
        // (MultiActiveCheckBackTests covers check-back across brokers).
        Skip.If(TestStorage.IsMultiActive, "a single broker's check-back pacing bound; multi-active check-back has its own tests");
        await using var factory = new BrokerFactory();
        using var c = factory.CreateClient();

        // 400 ms per answer with 4 in flight allows 10 a second, as the rate does: both limits bind in turn.
        var inFlight = 0;
        var maxInFlight = 0;
        var slowStarts = new ConcurrentQueue<DateTime>();
        await using var slow = await TestReceiver.Start(async (r, _) =>
        {
            var now = Interlocked.Increment(ref inFlight);
            InterlockedMax(ref maxInFlight, now);
            slowStarts.Enqueue(r.At);
            await Task.Delay(400);
            Interlocked.Decrement(ref inFlight);
            return (200, Commit);
        });
        var fastChecked = new ConcurrentDictionary<string, DateTime>();
        await using var fast = await TestReceiver.Start((r, _) =>
        {
            fastChecked[r.Body.Str("transactionId")] = r.At;
            return Task.FromResult((200, (string?)Commit));
        });
        Assert.Equal(HttpStatusCode.Created,
            (await c.Put("/v1/producer-groups/slow", new { checkUrl = slow.Url, maxChecksInFlight = SlowInFlight, maxChecksPerSecond = SlowPerSecond })).Status);
        Assert.Equal(HttpStatusCode.Created, (await c.Put("/v1/producer-groups/fast", new { checkUrl = fast.Url })).Status);

        // How late a fast check is with no backlog at all, on this machine now.
        var alone = new List<double>();
        for (var i = 0; i < 3; i++) alone.Add(await LatenessAsync(c, fastChecked, $"alone-{i}"));

        var created = DateTime.UtcNow;
        for (var batch = 0; batch < Backlog / 100; batch++)
        {
            var items = Enumerable.Range(0, 100).Select(i => new
            {
                topic = "slow-orders", producerGroup = "slow", transactionId = $"slow-{batch * 100 + i}", body = new { n = i }, checkImmunitySeconds = 1,
            }).ToArray();
            var answer = await c.Post("/v1/half-messages/batch", new { items });
            Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        }
        output.WriteLine($"{Backlog} half messages stored in {(DateTime.UtcNow - created).TotalMilliseconds:F0} ms");
        await Eventually.Until(() => slowStarts.Count >= SlowInFlight, "the slow group's first checks");

        // One at a time, each after the last one's check: ~10 sends spread over several seconds of backlog.
        var late = new List<double>();
        for (var i = 0; i < 10; i++) late.Add(await LatenessAsync(c, fastChecked, $"fast-{i}"));
        output.WriteLine($"fast group's checks after their due time: alone {Join(alone)} ms, with the backlog {Join(late)} ms");
        // Served in due order without fairness, the fast check would wait for the whole backlog (10,000
        // checks at 10 a second: 1,000 s). Fair, it waits at most for the loop to wake and for the pass
        // that plans the backlog when it comes due and the next one (256 moves each, a few hundred ms
        // apiece on a loaded 2-core machine; up to 1.8 s for both seen here) and the writer's group
        // commits: under 10 ms once the backlog is planned. The rest of the allowance is for the load: CI runs
        // this beside other test classes on 2 cores and has seen 3.9 s. Ten seconds still tells fair (seconds)
        // from due order (1,000 s) by two orders of magnitude; speed itself is the bench's to measure.
        var allowed = alone.Max() + 10_000;
        Assert.All(late, l => Assert.True(l <= allowed, $"a fast group's check started {l:F0} ms after it was due (allowed {allowed:F0} ms)"));

        var starts = slowStarts.OrderBy(t => t).ToArray();
        output.WriteLine($"slow group: {starts.Length} checks started, at most {maxInFlight} in flight, most in one second: {MostWithin(starts, TimeSpan.FromSeconds(1))}");
        Assert.True(maxInFlight <= SlowInFlight, $"{maxInFlight} checks in flight to the slow group");
        // Starts are timed at the receiver, so loopback latency may bring two a little closer than
        // the broker sent them: the window is cut by 50 ms for that.
        var most = MostWithin(starts, TimeSpan.FromMilliseconds(950));
        Assert.True(most <= SlowPerSecond, $"{most} checks of the slow group started within 950 ms");
        // The limits held it back, not a stall: it kept working through its backlog all along.
        Assert.True(starts.Length >= 20, $"only {starts.Length} checks of the slow group started");
        Assert.True(maxInFlight >= 2, $"the slow group never had more than {maxInFlight} check in flight");

        var slowView = (await c.Get("/v1/producer-groups/slow")).Json;
        Assert.Equal(SlowInFlight, slowView.Int("maxChecksInFlight"));
        Assert.Equal(SlowPerSecond, slowView.Int("maxChecksPerSecond"));
        // A waiting check of the backlog was moved, not counted.
        var waiting = (await c.Get("/v1/transactions?state=prepared&producerGroup=slow&limit=1")).Json["transactions"]![0]!;
        Assert.Equal(0, waiting.Int("checkCount"));
    }

    [Fact]
    public async Task Limits_are_validated_shown_with_the_brokers_defaults_and_kept_across_a_restart()
    {
        var dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-flow-tests", Guid.NewGuid().ToString("N"));
        var settings = new Dictionary<string, string?>
        {
            ["Broker:DataPath"] = dataPath,
            ["Broker:Transactions:ProducerGroupMaxChecksInFlight"] = "6",
            ["Broker:Transactions:ProducerGroupMaxChecksPerSecond"] = "50",
        };
        try
        {
            await using (var before = new BrokerFactory(settings))
            {
                using var c = before.CreateClient();
                foreach (var bad in new object[]
                {
                    new { maxChecksInFlight = 0 }, new { maxChecksInFlight = 1001 }, new { maxChecksPerSecond = -1 }, new { maxChecksPerSecond = 100_001 },
                })
                {
                    var refused = await c.Put("/v1/producer-groups/limited", bad);
                    Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
                    Assert.Contains("maxChecks", refused.Raw, StringComparison.Ordinal);
                }
                Assert.Equal(HttpStatusCode.NotFound, (await c.Get("/v1/producer-groups/limited")).Status);

                var defaults = (await c.Put("/v1/producer-groups/defaults", new { })).Json;
                Assert.Equal(6, defaults.Int("maxChecksInFlight"));
                Assert.Equal(50, defaults.Int("maxChecksPerSecond"));

                var own = await c.Put("/v1/producer-groups/limited", new { maxChecksInFlight = 2, maxChecksPerSecond = 0 });
                Assert.Equal(HttpStatusCode.Created, own.Status);
                Assert.Equal(2, own.Json.Int("maxChecksInFlight"));
                Assert.Null(own.Json["maxChecksPerSecond"]);
                // A PUT that does not name them (an SDK re-registering its check URL) keeps them.
                var again = await c.Put("/v1/producer-groups/limited", new { checkUrl = "http://127.0.0.1:9/check" });
                Assert.Equal(2, again.Json.Int("maxChecksInFlight"));
                Assert.Null(again.Json["maxChecksPerSecond"]);
            }

            // Restarted with other defaults: the group's own limits were stored, the other group follows the new defaults.
            settings["Broker:Transactions:ProducerGroupMaxChecksInFlight"] = "3";
            await using var after = new BrokerFactory(settings);
            using var c2 = after.CreateClient();
            var kept = (await c2.Get("/v1/producer-groups/limited")).Json;
            Assert.Equal(2, kept.Int("maxChecksInFlight"));
            Assert.Null(kept["maxChecksPerSecond"]);
            Assert.Equal(3, (await c2.Get("/v1/producer-groups/defaults")).Json.Int("maxChecksInFlight"));
        }
        finally
        {
            BrokerFactory.TryDelete(dataPath);
        }
    }

    /// <summary>Sends one half message of the fast group and answers how long after its due time (CheckAfter, 200 ms in tests) it was checked.</summary>
    private static async Task<double> LatenessAsync(HttpClient c, ConcurrentDictionary<string, DateTime> checkedAt, string tx)
    {
        var sentAt = DateTime.UtcNow;
        await c.SendHalf("fast-orders", tx, group: "fast");
        await Eventually.Until(() => checkedAt.ContainsKey(tx), $"the check of {tx}");
        return (checkedAt[tx] - sentAt).TotalMilliseconds - 200;
    }

    private static string Join(IEnumerable<double> values) =>
        string.Join(", ", values.Select(v => v.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)));

    private static int MostWithin(DateTime[] sorted, TimeSpan window)
    {
        var most = 0;
        for (int i = 0, j = 0; i < sorted.Length; i++)
        {
            while (j < sorted.Length && sorted[j] - sorted[i] < window) j++;
            most = Math.Max(most, j - i);
        }
        return most;
    }

    private static void InterlockedMax(ref int target, int value)
    {
        for (var seen = Volatile.Read(ref target); value > seen; seen = Volatile.Read(ref target))
        {
            if (Interlocked.CompareExchange(ref target, value, seen) == seen) return;
        }
    }
}
