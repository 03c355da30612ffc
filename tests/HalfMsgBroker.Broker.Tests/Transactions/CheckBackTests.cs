using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Transactions;

/// <summary>The broker checks back against a real Kestrel producer on a loopback port.</summary>
public sealed class CheckBackTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    private readonly HttpClient _c = broker.Client;
    private readonly HalfMsgBroker.Engine.StoreWriter _writer =
        (HalfMsgBroker.Engine.StoreWriter)broker.Factory.Services.GetService(typeof(HalfMsgBroker.Engine.StoreWriter))!;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private async Task<string> ProducerGroup(TestReceiver checker, int timeoutMs = 3000)
    {
        var group = Unique("pg");
        var answer = await _c.Put($"/v1/producer-groups/{group}", new { checkUrl = checker.Url, checkTimeoutMs = timeoutMs });
        Assert.Equal(System.Net.HttpStatusCode.Created, answer.Status);
        return group;
    }

    private Task<System.Text.Json.Nodes.JsonNode> Resolved(string tx) =>
        Eventually.Until(() => _c.Transaction(tx), t => t.Str("state") != "prepared", $"transaction {tx} resolved");

    [Theory]
    [InlineData("{\"state\":\"commit\"}", "committed")]
    [InlineData("{\"state\":\"rollback\"}", "rolledBack")]
    [InlineData("{\"state\":\"COMMIT_MESSAGE\"}", "committed")]
    [InlineData("{\"state\":\"rollback_message\"}", "rolledBack")]
    public async Task The_producers_answer_decides(string answer, string state)
    {
        await using var checker = await TestReceiver.Answering(200, answer);
        var group = await ProducerGroup(checker);
        var (topic, tx) = (Unique("t"), Unique("tx"));
        var id = await _c.SendHalf(topic, tx, group: group, extra: new { tag = "created", keys = new[] { "order-1" } });

        var resolved = await Resolved(tx);
        Assert.Equal(state, resolved.Str("state"));
        Assert.Equal("check", resolved.Str("resolvedBy"));
        Assert.Equal(1, resolved.Int("checkCount"));

        var request = Assert.Single(checker.Requests);
        Assert.Equal(tx, request.Body.Str("transactionId"));
        Assert.Equal(id, request.Body.Str("messageId"));
        Assert.Equal(topic, request.Body.Str("topic"));
        Assert.Equal(group, request.Body.Str("producerGroup"));
        Assert.Equal("created", request.Body.Str("tag"));
        Assert.Equal(1, request.Body.Int("checkTimes"));
        Assert.Equal(tx, request.Body["body"]!.Str("orderId"));
        Assert.NotNull(request.Body["bornAt"]);
    }

    [Fact]
    public async Task Unknown_is_checked_again_until_the_producer_commits()
    {
        await using var checker = await TestReceiver.Start((_, n) =>
            Task.FromResult((200, (string?)(n < 3 ? "{\"state\":\"UNKNOW\"}" : "{\"state\":\"commit\"}"))));
        var group = await ProducerGroup(checker);
        var tx = Unique("tx");
        await _c.SendHalf(Unique("t"), tx, group: group);

        var resolved = await Resolved(tx);
        Assert.Equal("committed", resolved.Str("state"));
        Assert.Equal(3, resolved.Int("checkCount"));
        Assert.Equal(new[] { 1, 2, 3 }, checker.Requests.Select(r => r.Body.Int("checkTimes")));
    }

    [Theory]
    [InlineData(500, "{\"state\":\"commit\"}", "http 500")]
    [InlineData(200, "not json at all", "invalid answer")]
    [InlineData(200, "{\"state\":\"maybe\"}", "invalid answer")]
    public async Task Errors_count_as_unknown_and_exhaust_after_exactly_max_checks(int status, string body, string result)
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Transactions:MaxChecks"] = "3" });
        using var client = factory.CreateClient();
        await using var checker = await TestReceiver.Answering(status, body);
        var group = Unique("pg");
        await client.Put($"/v1/producer-groups/{group}", new { checkUrl = checker.Url });
        var tx = Unique("tx");
        await client.SendHalf(Unique("t"), tx, group: group);

        var resolved = await Eventually.Until(() => client.Transaction(tx), t => t.Str("state") != "prepared", "exhaustion");
        Assert.Equal("rolledBack", resolved.Str("state"));
        Assert.Equal("checkExhausted", resolved.Str("resolvedBy"));
        Assert.Equal(3, resolved.Int("checkCount"));
        Assert.Equal(result, resolved.Str("lastCheckResult"));
        Assert.Equal(3, checker.Requests.Count);
    }

    [Fact]
    public async Task A_check_that_times_out_counts_as_unknown()
    {
        using var release = new CancellationTokenSource();
        await using var checker = await TestReceiver.Start(async (_, n) =>
        {
            if (n == 1) await Task.Delay(Timeout.Infinite, release.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            return (200, "{\"state\":\"rollback\"}");
        });
        var group = await ProducerGroup(checker, timeoutMs: 300);
        var tx = Unique("tx");
        await _c.SendHalf(Unique("t"), tx, group: group);

        var afterTimeout = await Eventually.Until(() => _c.Transaction(tx), t => t.Str("lastCheckResult") == "timeout" || t.Str("state") != "prepared", "a timed-out check");
        Assert.Equal("timeout", afterTimeout.Str("lastCheckResult"));
        var resolved = await Resolved(tx);
        await release.CancelAsync();
        Assert.Equal("rolledBack", resolved.Str("state"));
        Assert.Equal(2, resolved.Int("checkCount"));
    }

    [Fact]
    public async Task A_group_without_a_check_url_counts_as_unknown()
    {
        var group = Unique("pg");
        await _c.Put($"/v1/producer-groups/{group}", new { });
        var tx = Unique("tx");
        await _c.SendHalf(Unique("t"), tx, group: group);
        // checkCount moves when a check starts; the result lands when it is answered.
        var checkedOnce = await Eventually.Until(() => _c.Transaction(tx), t => t.Str("lastCheckResult") != "", "a check answered");
        Assert.Equal("no checkUrl", checkedOnce.Str("lastCheckResult"));
        Assert.Equal("prepared", checkedOnce.Str("state"));
        await _c.Post($"/v1/transactions/{tx}/rollback");
    }

    [Fact]
    public async Task A_commit_that_lands_while_a_check_is_in_flight_wins()
    {
        var tx = Unique("tx");
        var checkArrived = new TaskCompletionSource();
        var committed = new TaskCompletionSource();
        await using var checker = await TestReceiver.Start(async (_, _) =>
        {
            checkArrived.TrySetResult();
            await committed.Task;
            return (200, "{\"state\":\"rollback\"}");
        });
        var group = await ProducerGroup(checker);
        var topic = Unique("t");
        var consumer = Unique("g");
        await _c.Subscribe(consumer, topic);
        await _c.SendHalf(topic, tx, group: group);

        await checkArrived.Task.WaitAsync(TimeSpan.FromSeconds(15));
        var commit = await _c.Post($"/v1/transactions/{tx}/commit");
        Assert.Equal(System.Net.HttpStatusCode.OK, commit.Status);
        var writesBeforeAnswer = _writer.CommandsCommitted;
        committed.SetResult();

        // Nothing else writes in this broker now: the next write is the late rollback answer going through the writer.
        await Eventually.Until(() => _writer.CommandsCommitted > writesBeforeAnswer, "the late answer processed");
        await Eventually.Until(async () => (await _c.Receive(consumer, topic)).Count, n => n == 1, "the committed message delivered");
        var final = await _c.Transaction(tx);
        Assert.Equal("committed", final.Str("state"));
        Assert.Equal("producer", final.Str("resolvedBy"));
    }

    [Fact]
    public async Task Check_immunity_delays_the_first_check()
    {
        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
        var group = await ProducerGroup(checker);
        var tx = Unique("tx");
        var sentAt = DateTime.UtcNow;
        await _c.SendHalf(Unique("t"), tx, group: group, extra: new { checkImmunitySeconds = 1 });
        var resolved = await Resolved(tx);
        Assert.Equal("committed", resolved.Str("state"));
        Assert.True(Assert.Single(checker.Requests).At - sentAt >= TimeSpan.FromSeconds(0.9), "checked before checkImmunitySeconds");
    }

    [Fact]
    public async Task A_committed_message_still_waiting_for_its_consumer_is_not_checked_when_its_old_check_time_comes()
    {
        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"rollback\"}");
        var group = await ProducerGroup(checker);
        var (topic, consumer, tx) = (Unique("t"), Unique("g"), Unique("tx"));
        await _c.Subscribe(consumer, topic);
        // Two seconds of immunity so a slow machine still commits before the first check is due.
        var id = await _c.SendHalf(topic, tx, group: group, extra: new { checkImmunitySeconds = 2 });
        Assert.Equal(System.Net.HttpStatusCode.OK, (await _c.Post($"/v1/transactions/{tx}/commit")).Status);

        // The commit filed it as open, out of the check range: no check time of it can come.
        var store = (HalfMsgBroker.Storage.IMessageStore)broker.Factory.Services.GetService(typeof(HalfMsgBroker.Storage.IMessageStore))!;
        Assert.Contains(store.OpenMessages(), m => m.Id.ToString() == id);
        Assert.DoesNotContain(store.DueChecks(long.MaxValue / 1000, 100_000), m => m.Id.ToString() == id);
        Assert.Empty(checker.Requests);
        Assert.Equal("committed", (await _c.Transaction(tx)).Str("state"));

        var received = Assert.Single(await _c.Receive(consumer, topic));
        Assert.Equal(id, received.Str("messageId"));
        Assert.Equal(System.Net.HttpStatusCode.OK, (await _c.Ack(consumer, received.Str("receiptHandle"))).Status);
        Assert.Equal("acked", await _c.DeliveryState(id, consumer));
    }
}
