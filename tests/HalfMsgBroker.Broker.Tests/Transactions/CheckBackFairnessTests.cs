using HalfMsgBroker.Outbound;
using HalfMsgBroker.Tests.Support;
using Xunit.Abstractions;

namespace HalfMsgBroker.Tests.Transactions;

/// <summary>
/// A producer whose check endpoint never answers, with more due checks than there are check slots,
/// must not hold up another group's check: before the fair share it took all 64 slots and the other
/// group waited out its 60 s check timeout.
/// </summary>
public sealed class CheckBackFairnessTests(ITestOutputHelper output)
{
    private const string Commit = "{\"state\":\"commit\"}";

    [Fact]
    public async Task A_stalled_producer_with_many_due_checks_does_not_delay_another_groups_check()
    {
        await using var factory = new BrokerFactory();
        using var c = factory.CreateClient();
        var checkedAt = new System.Collections.Concurrent.ConcurrentDictionary<string, DateTime>();
        await using var healthy = await TestReceiver.Start((r, _) =>
        {
            checkedAt[r.Body.Str("transactionId")] = r.At;
            return Task.FromResult((200, (string?)Commit));
        });
        await c.Put("/v1/producer-groups/healthy", new { checkUrl = healthy.Url });
        var alone = await TimeToCheckAsync(c, checkedAt, "alone");

        using var release = new CancellationTokenSource();
        await using var stuck = await TestReceiver.Start(async (_, _) =>
        {
            await Task.Delay(Timeout.Infinite, release.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            return (200, Commit);
        });
        try
        {
            // Its own cap raised, so what holds it back is the per-host cap and the stall, as before group caps existed.
            await c.Put("/v1/producer-groups/stuck", new { checkUrl = stuck.Url, checkTimeoutMs = 60000, maxChecksInFlight = 64 });
            for (var i = 0; i < 100; i++) await c.SendHalf("stuck-orders", $"stuck-{i}", group: "stuck");
            await Eventually.Until(() => stuck.Requests.Count >= 32, "the stuck producer holding its host's check slots");

            var withStuck = await TimeToCheckAsync(c, checkedAt, "with-stuck");
            // The stuck group is stepped over once nothing of it finished for FairSlots.StallAfter; the
            // rest of the allowance is for a busy 2-core machine. The failure this guards against is 60 s.
            var allowed = alone + FairSlots.StallAfter.TotalMilliseconds + 2000;
            output.WriteLine($"healthy check {alone:F0} ms after the send alone, {withStuck:F0} ms with {stuck.Requests.Count} stuck checks held");
            Assert.True(withStuck <= allowed, $"check {withStuck:F0} ms after the send with the stuck group, {alone:F0} ms alone (allowed {allowed:F0} ms)");

            // The stuck group's waiting checks were moved, not used up. The check-back loop moves them as it
            // plans them, which on a busy machine may be after the healthy check: wait for it, with a deadline.
            var last = await Eventually.Until(
                () => c.Transaction("stuck-99"),
                t => DateTime.Parse(t.Str("nextCheckAt"), System.Globalization.CultureInfo.InvariantCulture).ToUniversalTime() > DateTime.UtcNow.AddSeconds(30),
                "stuck-99's check moved later (nextCheckAt more than 30 s ahead)");
            Assert.Equal("prepared", last.Str("state"));
            Assert.Equal(0, last.Int("checkCount"));
            Assert.True(stuck.Requests.Count <= 32, $"{stuck.Requests.Count} checks in flight to one host");
        }
        finally
        {
            // Lets the held checks end, so the broker and the receiver stop at once.
            await release.CancelAsync();
        }
    }

    private static async Task<double> TimeToCheckAsync(HttpClient c, System.Collections.Concurrent.ConcurrentDictionary<string, DateTime> checkedAt, string tx)
    {
        var sentAt = DateTime.UtcNow;
        await c.SendHalf("healthy-orders", tx, group: "healthy");
        await Eventually.Until(() => checkedAt.ContainsKey(tx), $"the check of {tx}");
        return (checkedAt[tx] - sentAt).TotalMilliseconds;
    }
}
