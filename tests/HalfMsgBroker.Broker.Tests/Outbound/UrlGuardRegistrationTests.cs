using System.Net;
using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.Mvc.Testing;

namespace HalfMsgBroker.Tests.Outbound;

/// <summary>Four brokers, one per Broker:Outbound setting under test, all resolving through a recording resolver.</summary>
public sealed class GuardedBrokers : IAsyncLifetime
{
    private readonly List<BrokerFactory> _factories = [];
    private readonly Dictionary<string, HttpClient> _clients = [];

    internal LoopbackResolver Resolver { get; } = new();

    public HttpClient this[string name] => _clients[name];

    public Task InitializeAsync()
    {
        Add("defaults", new());
        Add("no-loopback", new() { ["Broker:Outbound:AllowLoopback"] = "false" });
        Add("no-private", new() { ["Broker:Outbound:AllowPrivateNetworks"] = "false" });
        // The one-string form, as an environment variable would give it.
        Add("allowed-hosts", new() { ["Broker:Outbound:AllowedHosts"] = "example.com; *.example.org" });
        return Task.CompletedTask;
    }

    private void Add(string name, Dictionary<string, string?> settings)
    {
        var factory = new BrokerFactory(settings);
        _factories.Add(factory);
        _clients[name] = factory.With(Resolver).CreateClient();
    }

    public async Task DisposeAsync()
    {
        foreach (var client in _clients.Values) client.Dispose();
        foreach (var factory in _factories) await factory.DisposeAsync();
    }
}

/// <summary>
/// Both URL-taking endpoints refuse, with 400 url-not-allowed, what the broker must never call.
/// Registration does not connect or resolve: the resolver is never asked, and no URL here is called
/// (no message is ever sent to these groups).
/// </summary>
public sealed class UrlGuardRegistrationTests(GuardedBrokers brokers) : IClassFixture<GuardedBrokers>
{
    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    public static TheoryData<string, string, string> Refused => new()
    {
        { "defaults", "http://169.254.169.254/latest/meta-data/", "host 169.254.169.254 is link-local (cloud metadata); the broker never calls link-local, unspecified, multicast or broadcast addresses" },
        { "defaults", "http://[fe80::1]/hook", "host fe80::1 is link-local" },
        { "defaults", "http://[fe80::a9fe:a9fe%25eth0]:8080/hook", "host fe80::a9fe:a9fe is link-local" },
        { "defaults", "http://[::ffff:169.254.169.254]/", "host ::ffff:169.254.169.254 (169.254.169.254) is link-local" },
        { "defaults", "http://[::169.254.169.254]/", "(169.254.169.254) is link-local" },
        { "defaults", "http://2852039166/", "host 169.254.169.254 is link-local" },
        { "defaults", "http://0251.0376.0251.0376/", "host 169.254.169.254 is link-local" },
        { "defaults", "http://0xA9FEA9FE/", "host 169.254.169.254 is link-local" },
        { "defaults", "http://0xa9.0xfe.0xa9.0xfe/", "host 169.254.169.254 is link-local" },
        { "defaults", "http://169.254.169.254./", "host 169.254.169.254 is link-local" },
        { "defaults", "http://2852039166./", "host 169.254.169.254 is link-local" },
        { "defaults", "https://[fd00:ec2::254]/", "is a cloud metadata endpoint" },
        { "defaults", "http://0.0.0.0:8080/hook", "host 0.0.0.0 is an unspecified address" },
        { "defaults", "http://[::]/hook", "host :: is an unspecified address" },
        { "defaults", "http://224.0.0.1/hook", "host 224.0.0.1 is a multicast address" },
        { "defaults", "http://[ff02::1]/hook", "host ff02::1 is a multicast address" },
        { "defaults", "http://255.255.255.255/hook", "host 255.255.255.255 is the broadcast address" },
        { "no-loopback", "http://localhost:8080/hook", "host localhost is loopback; Broker:Outbound:AllowLoopback=true allows it" },
        { "no-loopback", "http://Checks.LocalHost./hook", "host checks.localhost is loopback" },
        { "no-loopback", "http://127.0.0.1:8080/hook", "host 127.0.0.1 is loopback" },
        { "no-loopback", "http://[::1]:8080/hook", "host ::1 is loopback" },
        { "no-loopback", "http://127.1/hook", "host 127.0.0.1 is loopback" },
        { "no-loopback", "http://[::ffff:127.0.0.1]/hook", "(127.0.0.1) is loopback" },
        { "no-private", "http://10.0.0.1/hook", "host 10.0.0.1 is in a private network (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7); Broker:Outbound:AllowPrivateNetworks=true allows it" },
        { "no-private", "http://192.168.1.1/hook", "host 192.168.1.1 is in a private network" },
        { "no-private", "http://172.16.0.1/hook", "host 172.16.0.1 is in a private network" },
        { "no-private", "http://100.64.0.1/hook", "host 100.64.0.1 is in a private network" },
        { "no-private", "http://[fc00::1]/hook", "host fc00::1 is in a private network" },
        { "no-private", "http://012.0.0.1/hook", "host 10.0.0.1 is in a private network" },
        { "allowed-hosts", "https://evil.test/hook", "host evil.test is not in Broker:Outbound:AllowedHosts; the broker calls only the hosts listed there" },
        { "allowed-hosts", "https://example.org/hook", "host example.org is not in Broker:Outbound:AllowedHosts" },
        { "allowed-hosts", "https://example.com.evil.test/hook", "host example.com.evil.test is not in Broker:Outbound:AllowedHosts" },
        { "allowed-hosts", "http://10.0.0.1/hook", "host 10.0.0.1 is not in Broker:Outbound:AllowedHosts" },
        { "allowed-hosts", "http://169.254.169.254/hook", "host 169.254.169.254 is link-local" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task A_url_the_broker_must_not_call_is_refused_at_registration(string broker, string url, string why)
    {
        var c = brokers[broker];

        var group = Unique("pg");
        var producer = await c.Put($"/v1/producer-groups/{group}", new { checkUrl = url });
        AssertRefused(producer, "checkUrl", why);
        Assert.Equal(HttpStatusCode.NotFound, (await c.Get($"/v1/producer-groups/{group}")).Status);

        var (consumer, topic) = (Unique("g"), Unique("t"));
        var push = await c.Put($"/v1/consumer-groups/{consumer}/subscriptions/{topic}", new { push = new { url } });
        AssertRefused(push, "push.url", why);
        Assert.Equal(HttpStatusCode.NotFound, (await c.Get($"/v1/consumer-groups/{consumer}")).Status);

        Assert.Empty(brokers.Resolver.Asked);
    }

    [Theory]
    [InlineData("defaults", "https://example.com/hook")]
    [InlineData("defaults", "http://localhost:8080/hook")]
    [InlineData("defaults", "http://10.0.0.1/hook")]
    [InlineData("no-loopback", "https://example.com/hook")]
    [InlineData("no-loopback", "http://resolves-to-loopback.test/hook")]
    [InlineData("no-private", "http://127.0.0.1:8080/hook")]
    [InlineData("allowed-hosts", "https://example.com/hook")]
    [InlineData("allowed-hosts", "https://EXAMPLE.com./hook")]
    [InlineData("allowed-hosts", "https://checks.eu.example.org:8443/hook")]
    public async Task An_allowed_url_is_stored_without_being_resolved_or_called(string broker, string url)
    {
        var c = brokers[broker];
        var producer = await c.Put($"/v1/producer-groups/{Unique("pg")}", new { checkUrl = url });
        Assert.True(producer.Status == HttpStatusCode.Created, producer.ToString());
        var push = await c.Put($"/v1/consumer-groups/{Unique("g")}/subscriptions/{Unique("t")}", new { push = new { url } });
        Assert.True(push.Status == HttpStatusCode.Created, push.ToString());
        Assert.Equal(url, push.Json["push"]!.Str("url"));
        Assert.Empty(brokers.Resolver.Asked);
    }

    [Fact]
    public async Task A_malformed_url_is_still_an_invalid_field()
    {
        var answer = await brokers["defaults"].Put($"/v1/producer-groups/{Unique("pg")}", new { checkUrl = "ftp://169.254.169.254/" });
        Assert.Equal(HttpStatusCode.BadRequest, answer.Status);
        Assert.Equal("invalid-field", answer.Code);
    }

    private static void AssertRefused(Http.Answer answer, string field, string why)
    {
        Assert.True(answer.Status == HttpStatusCode.BadRequest, answer.ToString());
        Assert.Equal("url-not-allowed", answer.Code);
        Assert.Equal("https://halfmsgbroker.dev/problems/url-not-allowed", answer.Json.Str("type"));
        Assert.StartsWith($"{field} host ", answer.Json.Str("detail"), StringComparison.Ordinal);
        Assert.Contains(why, answer.Json.Str("detail"), StringComparison.Ordinal);
        Assert.Contains(why, answer.Json["errors"]![field]![0]!.GetValue<string>(), StringComparison.Ordinal);
    }
}
