using System.Net;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Outbound;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Tests.Outbound;

/// <summary>The guard's decisions without a broker; the API tests check the same table end to end.</summary>
public sealed class OutboundPolicyTests
{
    private static OutboundPolicy Policy(bool loopback = true, bool privateNetworks = true, params string[] hosts) =>
        new(Options.Create(new BrokerOptions
        {
            Outbound = new OutboundOptions { AllowLoopback = loopback, AllowPrivateNetworks = privateNetworks, AllowedHosts = [.. hosts] },
        }));

    [Theory]
    [InlineData("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local")]
    [InlineData("http://2852039166/", "169.254.169.254", "link-local")]
    [InlineData("http://0251.0376.0251.0376/", "169.254.169.254", "link-local")]
    [InlineData("http://0xA9FEA9FE/", "169.254.169.254", "link-local")]
    [InlineData("http://169.254.169.254./", "169.254.169.254", "link-local")]
    [InlineData("http://0251.0376.0251.0376./", "169.254.169.254", "link-local")]
    [InlineData("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254 (169.254.169.254)", "link-local")]
    [InlineData("https://[fe80::1]:8443/", "fe80::1", "link-local")]
    [InlineData("http://[fe80::1%25eth0]/", "fe80::1", "link-local")]
    [InlineData("http://0.0.0.0:8080/", "0.0.0.0", "unspecified")]
    [InlineData("http://0/", "0.0.0.0", "unspecified")]
    [InlineData("http://[::]/", "::", "unspecified")]
    [InlineData("http://224.0.0.1/", "224.0.0.1", "multicast")]
    [InlineData("http://[ff02::1]/", "ff02::1", "multicast")]
    [InlineData("http://255.255.255.255/", "255.255.255.255", "broadcast")]
    [InlineData("http://[fd00:ec2::254]/", "fd00:ec2::254", "cloud metadata")]
    [InlineData("http://100.100.100.200/", "100.100.100.200", "cloud metadata")]
    public void Never_allowed_addresses_are_refused_in_every_spelling(string url, string shown, string reason)
    {
        var refusal = Policy().CheckUrl(url);
        Assert.NotNull(refusal);
        Assert.Equal(shown, refusal.Host);
        Assert.Contains(reason, refusal.Reason, StringComparison.Ordinal);
        Assert.Contains("the broker never calls", refusal.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://localhost:8080/hook")]
    [InlineData("http://LOCALHOST./hook")]
    [InlineData("http://checks.localhost/hook")]
    [InlineData("http://127.0.0.1/hook")]
    [InlineData("http://127.1/hook")]
    [InlineData("http://0x7f000001/hook")]
    [InlineData("http://[::1]:9000/hook")]
    [InlineData("http://[::ffff:127.0.0.1]/hook")]
    public void Loopback_is_refused_when_not_allowed(string url)
    {
        Assert.Null(Policy().CheckUrl(url));
        var refusal = Policy(loopback: false).CheckUrl(url);
        Assert.NotNull(refusal);
        Assert.Contains("is loopback; Broker:Outbound:AllowLoopback=true allows it", refusal.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://10.0.0.1/")]
    [InlineData("http://012.0.0.1/")]
    [InlineData("http://192.168.1.1/")]
    [InlineData("http://172.16.0.1/")]
    [InlineData("http://100.64.0.1/")]
    [InlineData("http://[fc00::1]/")]
    [InlineData("http://[fd00::1]/")]
    public void Private_networks_are_refused_when_not_allowed(string url)
    {
        Assert.Null(Policy().CheckUrl(url));
        var refusal = Policy(privateNetworks: false).CheckUrl(url);
        Assert.NotNull(refusal);
        Assert.Contains("private network", refusal.Reason, StringComparison.Ordinal);
        Assert.Contains("Broker:Outbound:AllowPrivateNetworks=true", refusal.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://example.com/hook", true)]
    [InlineData("https://EXAMPLE.com./hook", true)]
    [InlineData("https://api.example.org/hook", true)]
    [InlineData("https://a.b.example.org:8443/hook", true)]
    [InlineData("https://example.org/hook", false)]
    [InlineData("https://example.com.evil.test/hook", false)]
    [InlineData("https://notexample.com/hook", false)]
    [InlineData("http://10.0.0.5/hook", true)]
    [InlineData("http://10.0.0.6/hook", false)]
    [InlineData("http://localhost/hook", false)]
    public void Allowed_hosts_narrow_by_name_suffix_and_address(string url, bool allowed)
    {
        var refusal = Policy(true, true, "example.com; *.example.org", "10.0.0.5").CheckUrl(url);
        Assert.Equal(allowed, refusal is null);
        if (refusal is not null) Assert.Contains("not in Broker:Outbound:AllowedHosts", refusal.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Allowed_hosts_never_widen_what_is_refused()
    {
        var policy = Policy(false, true, "169.254.169.254", "localhost");
        Assert.Contains("link-local", policy.CheckUrl("http://169.254.169.254/")!.Reason, StringComparison.Ordinal);
        Assert.Contains("loopback", policy.CheckUrl("http://localhost/")!.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Names_are_not_resolved_at_registration_but_every_address_is_checked_at_connect()
    {
        var policy = Policy(loopback: false);
        Assert.Null(policy.CheckUrl("http://resolves-to-loopback.test/hook"));
        Assert.Null(policy.CheckHost("resolves-to-loopback.test"));
        Assert.NotNull(policy.CheckAddress(IPAddress.Loopback));
        Assert.NotNull(policy.CheckAddress(IPAddress.Parse("::ffff:127.0.0.1")));
        Assert.NotNull(Policy().CheckAddress(IPAddress.Parse("169.254.169.254")));
        Assert.Null(Policy().CheckAddress(IPAddress.Loopback));
        Assert.NotNull(Policy(true, true, "example.com").CheckHost("other.test"));
        Assert.Null(Policy(true, true, "example.com").CheckHost("Example.COM."));
    }

    [Theory]
    [InlineData("https://example.com")]
    [InlineData("example.com:443")]
    [InlineData("example.com/path")]
    [InlineData("*.*.com")]
    [InlineData("a b")]
    public void Entries_that_are_not_host_patterns_are_reported(string entry)
    {
        AllowedHosts.Parse([entry], out var invalid);
        Assert.Equal([entry], invalid);
    }
}
