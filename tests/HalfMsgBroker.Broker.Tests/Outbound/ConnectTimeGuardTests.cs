using System.Net;
using System.Net.Sockets;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Outbound;

/// <summary>
/// The second check, at every connection, against the address the name resolved to — with a real
/// Kestrel receiver on loopback that must receive nothing when the guard refuses. The broker
/// resolves through <see cref="LoopbackResolver"/>: "loopback-alias.test" is a name that is not
/// syntactically loopback (so registration passes) but resolves to 127.0.0.1.
/// </summary>
public sealed class ConnectTimeGuardTests
{
    private const string Alias = "loopback-alias.test";

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private static string OnAlias(TestReceiver receiver) => receiver.Url.Replace("127.0.0.1", Alias, StringComparison.Ordinal);

    [Theory]
    [InlineData(false, "url-not-allowed")]
    [InlineData(true, null)]
    public async Task A_name_resolving_to_loopback_is_refused_at_connect_when_loopback_is_not_allowed(bool allowLoopback, string? refused)
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:Outbound:AllowLoopback"] = allowLoopback ? "true" : "false",
        });
        var resolver = new LoopbackResolver(Alias);
        using var c = factory.With(resolver).CreateClient();
        await using var receiver = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");

        var (group, topic, producer) = (Unique("g"), Unique("t"), Unique("pg"));
        await c.Subscribe(group, topic, new { push = new { url = OnAlias(receiver) }, maxAttempts = 1, onExhausted = "discard" });
        Assert.Equal(HttpStatusCode.Created, (await c.Put($"/v1/producer-groups/{producer}", new { checkUrl = OnAlias(receiver) })).Status);
        var id = await c.Send(topic);
        var tx = Unique("tx");
        await c.SendHalf(Unique("t"), tx, group: producer);

        if (refused is null)
        {
            // The control: the same alias reaches the receiver when loopback is allowed.
            await Eventually.Until(() => c.DeliveryState(id, group), s => s == "acked", "push acked");
            await Eventually.Until(() => c.Transaction(tx), t => t.Str("state") == "committed", "committed by the check");
            Assert.Equal(2, receiver.Requests.Count);
        }
        else
        {
            var delivery = await Eventually.Until(async () => (await c.Message(id))["deliveries"]![0]!, d => d.Str("state") == "discarded", "the push refused");
            Assert.StartsWith(refused, delivery.Str("lastError"), StringComparison.Ordinal);
            var transaction = await Eventually.Until(() => c.Transaction(tx), t => t.Str("lastCheckResult") != "", "the check refused");
            Assert.Equal(refused, transaction.Str("lastCheckResult"));
            Assert.Equal("prepared", transaction.Str("state"));
            Assert.Empty(receiver.Requests);
        }
        Assert.Contains(Alias, resolver.Asked);
    }

    [Theory]
    [InlineData("Broker:Outbound:AllowLoopback", "false")]
    [InlineData("Broker:Outbound:AllowedHosts", "example.com")]
    public async Task Urls_stored_before_a_setting_narrowed_are_refused_at_connect(string setting, string value)
    {
        var dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-tests", Guid.NewGuid().ToString("N"));
        try
        {
            await using var receiver = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
            var url = receiver.Url.Replace("127.0.0.1", "localhost", StringComparison.Ordinal);
            var (group, topic, producer) = (Unique("g"), Unique("t"), Unique("pg"));
            await using (var before = new BrokerFactory(new Dictionary<string, string?> { ["Broker:DataPath"] = dataPath }))
            {
                using var c = before.CreateClient();
                await c.Subscribe(group, topic, new { push = new { url }, maxAttempts = 1, onExhausted = "discard" });
                Assert.Equal(HttpStatusCode.Created, (await c.Put($"/v1/producer-groups/{producer}", new { checkUrl = url })).Status);
            }

            await using var after = new BrokerFactory(new Dictionary<string, string?> { ["Broker:DataPath"] = dataPath, [setting] = value });
            using var client = after.CreateClient();
            var id = await client.Send(topic);
            var tx = Unique("tx");
            await client.SendHalf(Unique("t"), tx, group: producer);

            var delivery = await Eventually.Until(async () => (await client.Message(id))["deliveries"]![0]!, d => d.Str("state") == "discarded", "the push refused");
            Assert.StartsWith("url-not-allowed", delivery.Str("lastError"), StringComparison.Ordinal);
            var transaction = await Eventually.Until(() => client.Transaction(tx), t => t.Str("lastCheckResult") != "", "the check refused");
            Assert.Equal("url-not-allowed", transaction.Str("lastCheckResult"));
            Assert.Empty(receiver.Requests);
        }
        finally
        {
            BrokerFactory.TryDelete(dataPath);
        }
    }

    [Theory]
    [InlineData("connection refused", "http://127.0.0.1:{closed}/hook")]
    [InlineData("dns", "http://no-such-host.test/hook")]
    // A plain-HTTP listener cannot complete a TLS handshake.
    [InlineData("tls", "https://127.0.0.1:{receiver}/hook")]
    public async Task Failed_attempts_are_recorded_in_fixed_words_without_addresses(string expected, string url)
    {
        await using var factory = new BrokerFactory();
        using var c = factory.With(new LoopbackResolver()).CreateClient();
        await using var receiver = await TestReceiver.Answering(200);
        url = url.Replace("{receiver}", Port(new Uri(receiver.Url).Port), StringComparison.Ordinal)
            .Replace("{closed}", Port(ClosedPort()), StringComparison.Ordinal);
        var (group, topic) = (Unique("g"), Unique("t"));
        await c.Subscribe(group, topic, new { push = new { url, timeoutMs = 5000 }, maxAttempts = 1, onExhausted = "discard" });
        var id = await c.Send(topic);

        var delivery = await Eventually.Until(async () => (await c.Message(id))["deliveries"]![0]!, d => d.Str("state") == "discarded", "the failed push");
        Assert.Equal($"{expected} (attempt 1 of 1)", delivery.Str("lastError"));
    }

    private static string Port(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
