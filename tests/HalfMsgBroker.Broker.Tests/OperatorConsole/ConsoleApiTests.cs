using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.OperatorConsole;

/// <summary>The endpoints the console adds: check now, reasons in the audit trail, listings, figures, the static files.</summary>
public sealed class ConsoleApiTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    private readonly HttpClient _c = broker.Client;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task Check_now_brings_a_far_check_forward_and_is_audited_with_its_reason()
    {
        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
        var (group, topic, tx) = (Unique("pg"), Unique("t"), Unique("tx"));
        await _c.Put($"/v1/producer-groups/{group}", new { checkUrl = checker.Url });
        await _c.SendHalf(topic, tx, group: group, extra: new { checkImmunitySeconds = 3600 });
        var before = await _c.Transaction(tx);
        Assert.True(DateTime.Parse(before.Str("nextCheckAt"), null, System.Globalization.DateTimeStyles.RoundtripKind) > DateTime.UtcNow.AddMinutes(59));

        var check = await _c.Post($"/v1/transactions/{tx}/check", null,
            new Dictionary<string, string> { ["X-HalfMsg-Reason"] = Uri.EscapeDataString("Kunde wartet – prüfen") });
        Assert.Equal(HttpStatusCode.OK, check.Status);
        Assert.Equal("prepared", check.Json.Str("state"));

        var resolved = await Eventually.Until(() => _c.Transaction(tx), t => t.Str("state") == "committed", "committed by the check made now");
        Assert.Equal("check", resolved.Str("resolvedBy"));
        Assert.Single(checker.Requests);
        var entry = Assert.Single((await _c.Get($"/v1/audit?target={tx}")).Json["entries"]!.AsArray())!;
        Assert.Equal("transaction.check", entry.Str("action"));
        Assert.EndsWith("reason=Kunde wartet – prüfen", entry.Str("detail"), StringComparison.Ordinal);

        var again = await _c.Post($"/v1/transactions/{tx}/check");
        Assert.Equal(HttpStatusCode.Conflict, again.Status);
        Assert.Equal(HttpStatusCode.NotFound, (await _c.Post($"/v1/transactions/{Unique("none")}/check")).Status);
    }

    [Fact]
    public async Task A_commit_with_a_reason_is_audited_and_a_bad_reason_changes_nothing()
    {
        var (topic, tx) = (Unique("t"), Unique("tx"));
        await _c.SendHalf(topic, tx, extra: new { checkImmunitySeconds = 3600 });

        var bad = await _c.Post($"/v1/transactions/{tx}/commit", null, new Dictionary<string, string> { ["X-HalfMsg-Reason"] = "line%0Abreak" });
        Assert.Equal(HttpStatusCode.BadRequest, bad.Status);
        Assert.Equal("prepared", (await _c.Transaction(tx)).Str("state"));

        var commit = await _c.Post($"/v1/transactions/{tx}/commit", null, new Dictionary<string, string> { ["X-HalfMsg-Reason"] = "order paid, producer crashed" });
        Assert.Equal(HttpStatusCode.OK, commit.Status);
        var entry = Assert.Single((await _c.Get($"/v1/audit?target={tx}")).Json["entries"]!.AsArray())!;
        Assert.Equal("transaction.commit", entry.Str("action"));
        Assert.Equal("admin-key", entry.Str("actor"));
        Assert.EndsWith("reason=order paid, producer crashed", entry.Str("detail"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_message_view_says_who_ended_it_and_when_a_delivery_was_dead_lettered()
    {
        var (group, topic, tx) = (Unique("g"), Unique("t"), Unique("tx"));
        await _c.Subscribe(group, topic, new { maxAttempts = 1 });
        var id = await _c.SendHalf(topic, tx, extra: new { checkImmunitySeconds = 3600 });
        await _c.Post($"/v1/transactions/{tx}/commit");
        var handle = Assert.Single(await _c.Receive(group, topic))!.Str("receiptHandle");
        await _c.Post($"/v1/consumer-groups/{group}/nack", new { receiptHandle = handle, retryAfterSeconds = 0 });

        var m = await Eventually.Until(() => _c.Message(id), v => v["deliveries"]![0].Str("state") == "deadLettered", "dead-lettered");
        Assert.Equal("producer", m["transaction"].Str("resolvedBy"));
        Assert.Equal(0, m["transaction"].Int("checkCount"));
        Assert.False(string.IsNullOrEmpty(m.Str("resolvedAt")));
        Assert.False(string.IsNullOrEmpty(m["deliveries"]![0].Str("deadLetteredAt")));
    }

    [Fact]
    public async Task Transactions_filter_by_age_and_groups_are_listed()
    {
        var (pg, topic, tx, group) = (Unique("pg"), Unique("t"), Unique("tx"), Unique("g"));
        await _c.Put($"/v1/producer-groups/{pg}", new { });
        await _c.Subscribe(group, topic);
        await _c.SendHalf(topic, tx, group: pg, extra: new { checkImmunitySeconds = 3600 });

        var young = (await _c.Get($"/v1/transactions?producerGroup={pg}&minAgeSeconds=0")).Json["transactions"]!.AsArray();
        Assert.Single(young);
        Assert.Empty((await _c.Get($"/v1/transactions?producerGroup={pg}&minAgeSeconds=3600")).Json["transactions"]!.AsArray());
        Assert.Equal(HttpStatusCode.BadRequest, (await _c.Get("/v1/transactions?minAgeSeconds=-1")).Status);

        var producers = (await _c.Get("/v1/producer-groups")).Json["producerGroups"]!.AsArray();
        Assert.Contains(producers, p => p.Str("producerGroup") == pg);
        var consumers = (await _c.Get("/v1/consumer-groups")).Json["consumerGroups"]!.AsArray();
        var mine = Assert.Single(consumers, g => g.Str("consumerGroup") == group)!;
        Assert.False(mine["subscriptions"]![0]!["paused"]!.GetValue<bool>());
        Assert.NotNull(mine["subscriptions"]![0]!["counts"]);
    }

    [Fact]
    public async Task Topic_rates_count_what_was_sent_committed_and_acked()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic);
        await _c.Send(topic);
        await _c.Send(topic);
        var tx = Unique("tx");
        await _c.SendHalf(topic, tx, extra: new { checkImmunitySeconds = 3600 });
        await _c.Post($"/v1/transactions/{tx}/commit");
        var handles = (await _c.Receive(group, topic, wait: 2)).Select(m => m.Str("receiptHandle")).ToArray();
        await _c.Ack(group, handles);

        var stats = (await _c.Get("/v1/stats/topics?minutes=1")).Json;
        Assert.Equal(5, stats.Int("bucketSeconds"));
        var mine = Assert.Single(stats["topics"]!.AsArray(), t => t.Str("topic") == topic)!;
        int Sum(string series) => mine[series]!.AsArray().Sum(v => v!.GetValue<int>());
        Assert.Equal(12, mine["sent"]!.AsArray().Count);
        Assert.Equal(3, Sum("sent"));
        Assert.Equal(1, Sum("committed"));
        Assert.Equal(0, Sum("rolledBack"));
        Assert.Equal(handles.Length, Sum("acked"));
        Assert.Equal(HttpStatusCode.BadRequest, (await _c.Get("/v1/stats/topics?minutes=31")).Status);

        var overview = await Eventually.Until(async () => (await _c.Get("/v1/stats/overview")).Json, o => o.Int("prepared") >= 0 && o["figuresAt"] is not null, "figures read");
        Assert.NotNull(overview["checksSinceStart"]);
    }

    [Fact]
    public async Task The_console_is_served_without_a_key_under_a_strict_policy()
    {
        using var anonymous = broker.Factory.CreateAnonymousClient();
        var redirect = await anonymous.GetAsync(new Uri("/console", UriKind.Relative));
        Assert.Equal("/console/", redirect.RequestMessage!.RequestUri!.AbsolutePath);
        var page = await anonymous.GetAsync(new Uri("/console/", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
        var policy = page.Headers.GetValues("Content-Security-Policy").Single();
        Assert.StartsWith("default-src 'self'", policy, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", policy, StringComparison.Ordinal);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("<script type=\"module\" src=\"app.js\"></script>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("http://", html, StringComparison.Ordinal);
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);

        var script = await anonymous.GetAsync(new Uri("/console/app.js", UriKind.Relative));
        Assert.Equal("text/javascript", script.Content.Headers.ContentType!.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, (await anonymous.GetAsync(new Uri("/console/nope.js", UriKind.Relative))).StatusCode);
        // The data is not: every figure needs the key.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(new Uri("/v1/stats/overview", UriKind.Relative))).StatusCode);
    }
}
