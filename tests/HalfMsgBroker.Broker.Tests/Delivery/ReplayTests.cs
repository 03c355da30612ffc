using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Delivery;

/// <summary>
/// Replay delivers again what a group consumed since a time (by commit time, not birth), and retry-now
/// ends the backoffs of a subscription's retries; both are stored before they are answered.
/// </summary>
public sealed class ReplayTests : IAsyncLifetime
{
    private BrokerFactory _factory = null!;
    private HttpClient _c = null!;

    public Task InitializeAsync()
    {
        _factory = new BrokerFactory();
        _c = _factory.CreateClient();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    private static string Rfc3339(DateTime utc) => utc.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    /// <summary>A time after every commit so far: the clock has moved past <paramref name="committedAt"/>'s millisecond.</summary>
    private static async Task<DateTime> After(DateTime committedAt)
    {
        await Eventually.Until(() => DateTime.UtcNow > committedAt.AddMilliseconds(1), "the clock to pass the last commit");
        return DateTime.UtcNow;
    }

    private async Task<DateTime> CommittedAt(string messageId) =>
        DateTime.Parse((await _c.Message(messageId)).Str("bornAt"), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);

    private static async Task<List<JsonNode>> ReceiveAtLeast(HttpClient c, string group, string topic, int count)
    {
        var got = new List<JsonNode>();
        await Eventually.Until(async () =>
        {
            got.AddRange((await c.Receive(group, topic, wait: 1)).Select(m => m!));
            return got.Count;
        }, n => n >= count, $"{count} messages for {group}");
        return got;
    }

    private static async Task AckAll(HttpClient c, string group, IEnumerable<JsonNode> messages) =>
        Assert.Equal(HttpStatusCode.OK, (await c.Ack(group, messages.Select(m => m.Str("receiptHandle")).ToArray())).Status);

    [Fact]
    public async Task Replay_after_acks_redelivers_exactly_the_messages_committed_since_from()
    {
        await _c.Subscribe("audit", "ledger");
        var half = await _c.SendHalf("ledger", "replay-tx-1", extra: new { checkImmunitySeconds = 600 }); // born before, committed after `from`
        var before = await _c.Send("ledger", new { n = "before" });
        await AckAll(_c, "audit", await ReceiveAtLeast(_c, "audit", "ledger", 1));

        var from = await After(await CommittedAt(before));
        Assert.Equal(HttpStatusCode.OK, (await _c.Post("/v1/transactions/replay-tx-1/commit")).Status);
        var after = await _c.Send("ledger", new { n = "after" });
        await AckAll(_c, "audit", await ReceiveAtLeast(_c, "audit", "ledger", 2));
        var inFlight = await _c.Send("ledger", new { n = "in flight" });
        Assert.Equal(inFlight, Assert.Single(await ReceiveAtLeast(_c, "audit", "ledger", 1)).Str("messageId"));
        var pending = await _c.Send("ledger", new { n = "pending" });

        var replay = await _c.Post("/v1/consumer-groups/audit/subscriptions/ledger/replay", new { from = Rfc3339(from) });
        Assert.Equal(HttpStatusCode.OK, replay.Status);
        Assert.Equal(2, replay.Json.Int("replayed")); // the pending and the in-flight ones are not doubled

        var again = await ReceiveAtLeast(_c, "audit", "ledger", 3);
        Assert.Equal(new[] { half, after, pending }.Order(), again.Select(m => m.Str("messageId")).Order());
        Assert.All(again, m => Assert.Equal(1, m.Int("attempt")));
        Assert.Empty(await _c.Receive("audit", "ledger", wait: 1));
        Assert.Equal("acked", await _c.DeliveryState(before, "audit")); // committed before `from`

        var audit = (await _c.Get("/v1/audit?limit=1000")).Json["entries"]!.AsArray();
        var entry = Assert.Single(audit, e => e!.Str("action") == "subscription.replay")!;
        Assert.Equal("audit/ledger", entry.Str("target"));
        Assert.Contains("2 replayed", entry.Str("detail"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Replay_pushes_the_messages_again()
    {
        await using var receiver = await TestReceiver.Answering(200);
        await _c.Subscribe("mirror", "events", new { push = new { url = receiver.Url, timeoutMs = 2000 } });
        var from = DateTime.UtcNow.AddSeconds(-1);
        var a = await _c.Send("events", new { n = "a" });
        var b = await _c.Send("events", new { n = "b" });
        foreach (var id in new[] { a, b }) await Eventually.Until(() => _c.DeliveryState(id, "mirror"), s => s == "acked", "the first push");

        var replay = await _c.Post("/v1/consumer-groups/mirror/subscriptions/events/replay", new { from = Rfc3339(from) });
        Assert.Equal(2, replay.Json.Int("replayed"));

        await Eventually.Until(() => receiver.Requests.Count >= 4, "the replayed pushes");
        foreach (var id in new[] { a, b }) await Eventually.Until(() => _c.DeliveryState(id, "mirror"), s => s == "acked", "the replayed push acked");
        var pushed = receiver.Requests.Select(r => r.Body.Str("messageId")).ToList();
        Assert.Equal(2, pushed.Count(id => id == a));
        Assert.Equal(2, pushed.Count(id => id == b));
        Assert.Equal(4, pushed.Count);
    }

    [Fact]
    public async Task Retry_now_makes_a_message_nacked_with_a_long_delay_receivable_at_once()
    {
        await _c.Subscribe("slow", "jobs");
        var first = await _c.Send("jobs", new { n = 1 });
        var second = await _c.Send("jobs", new { n = 2 });
        foreach (var m in await ReceiveAtLeast(_c, "slow", "jobs", 2))
        {
            var nack = await _c.Post("/v1/consumer-groups/slow/nack", new { receiptHandle = m.Str("receiptHandle"), retryAfterSeconds = 3600 });
            Assert.Equal("retrying", nack.Json.Str("state"));
        }
        Assert.Empty(await _c.Receive("slow", "jobs", wait: 1));

        var one = await _c.Post("/v1/consumer-groups/slow/subscriptions/jobs/retry-now", new { messageIds = new[] { first } });
        Assert.Equal(1, one.Json.Int("retried"));
        var got = Assert.Single(await ReceiveAtLeast(_c, "slow", "jobs", 1));
        Assert.Equal((first, 2), (got.Str("messageId"), got.Int("attempt")));

        var rest = await _c.Post("/v1/consumer-groups/slow/subscriptions/jobs/retry-now", null);
        Assert.Equal(1, rest.Json.Int("retried")); // the first is in flight now, not retrying
        Assert.Equal(second, Assert.Single(await ReceiveAtLeast(_c, "slow", "jobs", 1)).Str("messageId"));
        Assert.Equal(0, (await _c.Post("/v1/consumer-groups/slow/subscriptions/jobs/retry-now", new { })).Json.Int("retried"));
        Assert.Single((await _c.Get("/v1/audit?limit=1000")).Json["entries"]!.AsArray(), e => e!.Str("detail").StartsWith("all: 1 retried now", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Retry_now_wakes_push_dispatch_at_once()
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:Delivery:RetryBackoff:0"] = "01:00:00",
            ["Broker:Delivery:RetryBackoff:1"] = "01:00:00",
        });
        var c = factory.CreateClient();
        await using var receiver = await TestReceiver.Answering(503);
        await c.Subscribe("hooks", "events", new { push = new { url = receiver.Url, timeoutMs = 2000 } });
        var id = await c.Send("events");
        await Eventually.Until(() => c.DeliveryState(id, "hooks"), s => s == "retrying", "the failed push");

        receiver.Respond((_, _) => Task.FromResult((200, (string?)null)));
        Assert.Equal(1, (await c.Post("/v1/consumer-groups/hooks/subscriptions/events/retry-now", new { })).Json.Int("retried"));
        await Eventually.Until(() => c.DeliveryState(id, "hooks"), s => s == "acked", "the push brought forward");
        Assert.Equal(2, receiver.Requests.Count);
    }

    [Fact]
    public async Task Bad_input_is_refused_and_changes_nothing()
    {
        await _c.Subscribe("audit", "ledger");
        var id = await _c.Send("ledger");
        await AckAll(_c, "audit", await ReceiveAtLeast(_c, "audit", "ledger", 1));
        const string replay = "/v1/consumer-groups/audit/subscriptions/ledger/replay";
        const string retryNow = "/v1/consumer-groups/audit/subscriptions/ledger/retry-now";

        foreach (var (body, problem) in new (object?, string)[]
        {
            (new { }, "is required"),
            (new { from = "yesterday" }, "RFC 3339"),
            (new { from = "2026-11-30T07:00:00" }, "RFC 3339"), // no offset
            (new { from = Rfc3339(DateTime.UtcNow.AddMinutes(5)) }, "later than the broker's current time"),
        })
        {
            var answer = await _c.Post(replay, body);
            Assert.True(answer.Status == HttpStatusCode.BadRequest, answer.ToString());
            Assert.Equal("invalid-field", answer.Code);
            Assert.Contains(problem, answer.Json["errors"]!["from"]![0]!.GetValue<string>(), StringComparison.Ordinal);
        }
        Assert.Equal("invalid-field", (await _c.PostRaw(replay, "")).Code);
        Assert.Equal("malformed-json", (await _c.PostRaw(replay, "{\"from\":")).Code);

        var unknown = await _c.Post("/v1/consumer-groups/audit/subscriptions/other/replay", new { from = Rfc3339(DateTime.UtcNow.AddMinutes(-5)) });
        Assert.Equal((HttpStatusCode.NotFound, "subscription-not-found"), (unknown.Status, unknown.Code));
        var unknownRetry = await _c.Post("/v1/consumer-groups/nobody/subscriptions/ledger/retry-now", new { });
        Assert.Equal((HttpStatusCode.NotFound, "subscription-not-found"), (unknownRetry.Status, unknownRetry.Code));
        Assert.Equal("invalid-name", (await _c.Post("/v1/consumer-groups/a%20b/subscriptions/ledger/replay", new { from = "2026-01-01T00:00:00Z" })).Code);

        Assert.Equal("invalid-field", (await _c.Post(retryNow, new { messageIds = new[] { "not-an-id" } })).Code);
        Assert.Equal("invalid-field", (await _c.Post(retryNow, new { messageIds = Array.Empty<string>() })).Code);

        Assert.Equal("acked", await _c.DeliveryState(id, "audit"));
        Assert.Empty(await _c.Receive("audit", "ledger"));
        Assert.DoesNotContain((await _c.Get("/v1/audit?limit=1000")).Json["entries"]!.AsArray(), e => e!.Str("action") == "subscription.replay");
    }
}
