using System.Net;
using System.Net.Sockets;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Transactions;

/// <summary>
/// A producer that cannot be reached (here: a loopback port nobody listens on, so connection refused)
/// is offline, not saying "no": its checks are not spent, and only MaxPendingTime ends the transaction
/// (issue 16, item 2; RocketMQ #475 / #8316).
/// </summary>
public sealed class OfflineProducerTests
{
    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>A loopback URL with nobody listening: the port was free a moment ago and is closed again.</summary>
    private static string DeadUrl()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return $"http://127.0.0.1:{port}/check";
    }

    [Fact]
    public async Task Refused_connections_spend_no_check_and_the_transaction_commits_when_the_producer_is_back()
    {
        // One check only: before, the first refused connection used it up and rolled the transaction back.
        await using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Transactions:MaxChecks"] = "1" });
        using var client = factory.CreateClient();
        var group = Unique("pg");
        await client.Put($"/v1/producer-groups/{group}", new { checkUrl = DeadUrl() });
        var tx = Unique("tx");
        await client.SendHalf(Unique("t"), tx, group: group);

        var offline = await Eventually.Until(() => client.Transaction(tx),
            t => t.Int("unreachableCount") >= 3 || t.Str("state") != "prepared", "three unreachable checks");
        Assert.Equal("prepared", offline.Str("state"));
        Assert.Equal("connection refused", offline.Str("lastCheckResult"));
        Assert.Equal(0, offline.Int("unknownCount"));
        Assert.True(offline.Int("checkCount") <= 1, $"checkCount {offline.Int("checkCount")}"); // 1 only while a check is in flight

        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
        await client.Put($"/v1/producer-groups/{group}", new { checkUrl = checker.Url });
        var resolved = await Eventually.Until(() => client.Transaction(tx), t => t.Str("state") != "prepared", "the transaction resolved");
        Assert.Equal("committed", resolved.Str("state"));
        Assert.Equal("check", resolved.Str("resolvedBy"));
        Assert.Equal(1, resolved.Int("checkCount"));
        Assert.True(resolved.Int("unreachableCount") >= 3);
    }

    [Fact]
    public async Task An_unreachable_producer_ends_as_check_exhausted_after_max_pending_time()
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:Transactions:MaxChecks"] = "1",
            ["Broker:Transactions:MaxPendingTime"] = "00:00:02",
        });
        using var client = factory.CreateClient();
        var group = Unique("pg");
        await client.Put($"/v1/producer-groups/{group}", new { checkUrl = DeadUrl() });
        var tx = Unique("tx");
        await client.SendHalf(Unique("t"), tx, group: group);

        var resolved = await Eventually.Until(() => client.Transaction(tx), t => t.Str("state") != "prepared", "the transaction exhausted");
        Assert.Equal("rolledBack", resolved.Str("state"));
        Assert.Equal("checkExhausted", resolved.Str("resolvedBy"));
        Assert.Equal("connection refused", resolved.Str("lastCheckResult"));
        Assert.Equal(0, resolved.Int("checkCount"));
        Assert.True(resolved.Int("unreachableCount") >= 2, $"unreachableCount {resolved.Int("unreachableCount")}");
        var pending = DateTime.Parse(resolved.Str("resolvedAt"), null, System.Globalization.DateTimeStyles.RoundtripKind)
            - DateTime.Parse(resolved.Str("createdAt"), null, System.Globalization.DateTimeStyles.RoundtripKind);
        Assert.True(pending >= TimeSpan.FromSeconds(2), $"ended after {pending}, before MaxPendingTime");
    }
}

/// <summary>"Still running, ask again in N s" (issue 16, item 1).</summary>
public sealed class AskAgainLaterTests
{
    [Fact]
    public async Task Ask_again_later_does_not_spend_checks_and_the_next_check_waits_as_asked()
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Transactions:MaxChecks"] = "1" });
        using var client = factory.CreateClient();
        await using var checker = await TestReceiver.Start((_, n) => Task.FromResult((200,
            (string?)(n < 3 ? "{\"state\":\"unknown\",\"retryAfterSeconds\":1}" : "{\"state\":\"commit\"}"))));
        var group = "pg-" + Guid.NewGuid().ToString("N")[..8];
        await client.Put($"/v1/producer-groups/{group}", new { checkUrl = checker.Url });
        var tx = "tx-" + Guid.NewGuid().ToString("N")[..8];
        await client.SendHalf("t-" + Guid.NewGuid().ToString("N")[..8], tx, group: group);

        var waiting = await Eventually.Until(() => client.Transaction(tx),
            t => t.Int("unknownCount") >= 1 || t.Str("state") != "prepared", "the first ask-again answer");
        Assert.Equal("prepared", waiting.Str("state"));
        Assert.Equal("unknown, retry after 1 s", waiting.Str("lastCheckResult"));

        var resolved = await Eventually.Until(() => client.Transaction(tx), t => t.Str("state") != "prepared", "the transaction resolved");
        Assert.Equal("committed", resolved.Str("state"));
        Assert.Equal(1, resolved.Int("checkCount"));
        Assert.Equal(2, resolved.Int("unknownCount"));
        var at = checker.Requests.Select(r => r.At).ToArray();
        Assert.Equal(3, at.Length);
        // Not the 200 ms CheckInterval: the second asked for.
        Assert.True(at[1] - at[0] >= TimeSpan.FromSeconds(0.9) && at[2] - at[1] >= TimeSpan.FromSeconds(0.9),
            $"checked again after {at[1] - at[0]} and {at[2] - at[1]}");
    }

    [Fact]
    public async Task Ask_again_later_forever_ends_after_max_pending_time()
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:Transactions:MaxChecks"] = "1",
            ["Broker:Transactions:MaxPendingTime"] = "00:00:02.500",
        });
        using var client = factory.CreateClient();
        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"unknown\",\"retryAfterSeconds\":1}");
        var group = "pg-" + Guid.NewGuid().ToString("N")[..8];
        await client.Put($"/v1/producer-groups/{group}", new { checkUrl = checker.Url });
        var tx = "tx-" + Guid.NewGuid().ToString("N")[..8];
        await client.SendHalf("t-" + Guid.NewGuid().ToString("N")[..8], tx, group: group);

        var resolved = await Eventually.Until(() => client.Transaction(tx), t => t.Str("state") != "prepared", "the transaction exhausted");
        Assert.Equal("rolledBack", resolved.Str("state"));
        Assert.Equal("checkExhausted", resolved.Str("resolvedBy"));
        Assert.Equal(0, resolved.Int("checkCount"));
        Assert.True(resolved.Int("unknownCount") >= 2, $"unknownCount {resolved.Int("unknownCount")}");
    }
}
