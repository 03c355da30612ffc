using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Telemetry;

/// <summary>
/// <c>/metrics</c> in Prometheus' text format, scraped from a broker of the test's own (so every
/// counter starts at zero and the figures are exact).
/// </summary>
public sealed class MetricsTests : IAsyncLifetime
{
    private readonly BrokerFactory _factory = new(new Dictionary<string, string?>
    {
        ["Broker:Telemetry:StoreFiguresMaxAge"] = "00:00:00.100",
        ["Broker:Transactions:MaxChecks"] = "100",
    });

    private HttpClient _c = null!;

    public Task InitializeAsync()
    {
        _c = _factory.CreateClient();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _c.Dispose();
        await _factory.DisposeAsync();
    }

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task The_scrape_needs_the_admin_key()
    {
        using var anonymous = _factory.CreateAnonymousClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(new Uri("/metrics", UriKind.Relative))).StatusCode);
        using var wrong = _factory.CreateClient("not-a-key-of-this-broker-0123456789abcdef");
        Assert.Equal(HttpStatusCode.Unauthorized, (await wrong.GetAsync(new Uri("/metrics", UriKind.Relative))).StatusCode);
        var scrape = await _c.GetAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
        Assert.StartsWith("text/plain", scrape.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_scrape_reports_sends_resolutions_queues_dead_letters_checks_push_failures_and_the_store()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic);
        await _c.Send(topic);
        await _c.Send(topic);
        var committed = Unique("tx");
        await _c.SendHalf(topic, committed);
        Assert.Equal(HttpStatusCode.OK, (await _c.Post($"/v1/transactions/{committed}/commit")).Status);
        await _c.SendHalf(topic, Unique("tx"), extra: new { checkImmunitySeconds = 600 }); // stays prepared

        // One received and acked (commit → ack), one received and held, one left ready.
        var first = Assert.Single(await _c.Receive(group, topic, max: 1))!;
        Assert.Equal(HttpStatusCode.OK, (await _c.Ack(group, first.Str("receiptHandle"))).Status);
        Assert.Single(await _c.Receive(group, topic, max: 1));

        // A dead letter: one attempt allowed, nacked.
        var (deadGroup, deadTopic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(deadGroup, deadTopic, new { maxAttempts = 1 });
        await _c.Send(deadTopic);
        var doomed = Assert.Single(await _c.Receive(deadGroup, deadTopic))!;
        var nack = await _c.Post($"/v1/consumer-groups/{deadGroup}/nack", new { receiptHandle = doomed.Str("receiptHandle"), retryAfterSeconds = 0 });
        Assert.Equal("deadLettered", nack.Json.Str("state"));

        // A check-back the producer answers with commit.
        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
        var producerGroup = Unique("pg");
        Assert.Equal(HttpStatusCode.Created, (await _c.Put($"/v1/producer-groups/{producerGroup}", new { checkUrl = checker.Url })).Status);
        var checkedTx = Unique("tx");
        await _c.SendHalf(Unique("t"), checkedTx, group: producerGroup);
        await Eventually.Until(() => _c.Transaction(checkedTx), t => t.Str("state") == "committed", "the check-back to commit");

        // A push to a port nobody listens on.
        var (pushGroup, pushTopic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(pushGroup, pushTopic, new { push = new { url = $"http://127.0.0.1:{DeadPort()}/hook" } });
        var pushed = await _c.Send(pushTopic);
        await Eventually.Until(async () => (await _c.Message(pushed))["deliveries"]![0]!.Int("attempts"), n => n >= 1, "a failed push attempt");

        var labels = (Group: $"consumer_group=\"{group}\"", Topic: $"topic=\"{topic}\"");
        var scrape = await Eventually.Until(Scrape, s =>
            ScrapeText.Value(s, "halfmsg_transactions_prepared") == 1
            && ScrapeText.Value(s, "halfmsg_subscription_dead_lettered", $"consumer_group=\"{deadGroup}\"") == 1
            && ScrapeText.Value(s, "halfmsg_push_failures_total", "reason=\"connection refused\"") >= 1
            && ScrapeText.Value(s, "halfmsg_delivery_commit_to_ack_seconds_count") == 1,
            "the scrape to show the store's figures and the latest counts");

        Assert.Equal(4, ScrapeText.Value(scrape, "halfmsg_messages_sent_total", "kind=\"plain\""));
        Assert.Equal(3, ScrapeText.Value(scrape, "halfmsg_messages_sent_total", "kind=\"half\""));
        Assert.Equal(1, ScrapeText.Value(scrape, "halfmsg_messages_committed_total", "resolved_by=\"producer\""));
        Assert.Equal(1, ScrapeText.Value(scrape, "halfmsg_messages_committed_total", "resolved_by=\"check\""));
        Assert.Equal(1, ScrapeText.Value(scrape, "halfmsg_checks_total", "outcome=\"commit\""));
        Assert.Equal(1, ScrapeText.Value(scrape, "halfmsg_subscription_ready", labels.Group, labels.Topic));
        Assert.Equal(1, ScrapeText.Value(scrape, "halfmsg_subscription_in_flight", labels.Group, labels.Topic));
        Assert.Equal(0, ScrapeText.Value(scrape, "halfmsg_subscription_retrying", labels.Group, labels.Topic));
        Assert.Equal(0, ScrapeText.Value(scrape, "halfmsg_subscription_dead_lettered", labels.Group, labels.Topic));
        Assert.True(ScrapeText.Value(scrape, "halfmsg_transactions_oldest_prepared_age_seconds") >= 0);
        Assert.True(ScrapeText.Value(scrape, "halfmsg_store_batch_size_count") >= 10);
        // The journal's gauges exist only on LiteDB; on PostgreSQL there is no journal to lag.
        Assert.Equal(!TestStorage.IsPostgreSql, scrape.Contains("halfmsg_journal_apply_lag_frames", StringComparison.Ordinal));
        if (!TestStorage.IsPostgreSql)
        {
            Assert.True(ScrapeText.Value(scrape, "halfmsg_journal_apply_lag_frames") >= 0);
            Assert.Equal(0, ScrapeText.Value(scrape, "halfmsg_storage_quarantined"));
        }
    }

    private async Task<string> Scrape()
    {
        var answer = await _c.Get("/metrics");
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        return answer.Raw;
    }

    private static int DeadPort()
    {
        using var socket = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        return ((IPEndPoint)socket.LocalEndpoint).Port;
    }
}
