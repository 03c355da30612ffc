using System.Net;
using HalfMsgBroker.Configuration;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Outbound;

/// <summary>Why the broker will not call a host: "host 169.254.169.254 is link-local (…)".</summary>
internal sealed record OutboundRefusal(string Host, string Reason)
{
    public override string ToString() => $"host {Host} {Reason}";
}

/// <summary>
/// Decides where the broker may call, twice: when a URL is registered (<see cref="CheckUrl"/>: the
/// host as written — IP literals in any spelling, <c>localhost</c> names — without resolving it) and
/// when a connection is opened (<see cref="CheckHost"/> and <see cref="CheckAddress"/> for every
/// address the name resolved to), so a name that resolves somewhere forbidden is caught as well.
/// </summary>
internal sealed class OutboundPolicy
{
    private const string Never = "the broker never calls link-local, unspecified, multicast or broadcast addresses";

    private readonly bool _allowLoopback;
    private readonly bool _allowPrivate;
    private readonly AllowedHosts _hosts;

    public OutboundPolicy(IOptions<BrokerOptions> options)
    {
        var o = options.Value.Outbound;
        _allowLoopback = o.AllowLoopback;
        _allowPrivate = o.AllowPrivateNetworks;
        _hosts = AllowedHosts.Parse(o.AllowedHosts, out _);
    }

    /// <summary>At registration: null when the broker may call <paramref name="url"/>.</summary>
    public OutboundRefusal? CheckUrl(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            return new OutboundRefusal(url, "is not in an absolute http:// or https:// URL");
        }
        // Uri turns decimal, octal and hex IPv4 into dotted decimal itself, but a trailing dot
        // ("169.254.169.254.") makes it a DNS name: NormalizeHost strips it and parses again.
        var host = NormalizeHost(uri.HostNameType == UriHostNameType.IPv6 ? uri.Host : uri.IdnHost);
        var address = ParseAddress(host);
        AddressClass? kind = address is not null ? AddressClasses.Classify(address) : IsLocalhostName(host) ? AddressClass.Loopback : null;
        var shown = Shown(host, address);

        if (kind is { } never && AddressClasses.IsNeverAllowed(never)) return new OutboundRefusal(shown, Describe(never));
        if (!_hosts.Allows(host, address)) return new OutboundRefusal(shown, NotListed);
        return kind is { } k && Refuses(k) ? new OutboundRefusal(shown, Describe(k)) : null;
    }

    /// <summary>At connect time, the request's host against AllowedHosts (addresses are checked after resolving).</summary>
    public OutboundRefusal? CheckHost(string host)
    {
        var normalized = NormalizeHost(host);
        var address = ParseAddress(normalized);
        return _hosts.Allows(normalized, address) ? null : new OutboundRefusal(Shown(normalized, address), NotListed);
    }

    /// <summary>At connect time, one address the host resolved to.</summary>
    public OutboundRefusal? CheckAddress(IPAddress address)
    {
        var kind = AddressClasses.Classify(address);
        return AddressClasses.IsNeverAllowed(kind) || Refuses(kind) ? new OutboundRefusal(Shown(address.ToString(), address), Describe(kind)) : null;
    }

    /// <summary>Lower case, without IPv6 brackets or trailing dots ("LocalHost." is "localhost").</summary>
    public static string NormalizeHost(string host) => host.Trim('[', ']').TrimEnd('.').ToLowerInvariant();

    /// <summary>An IP literal in any spelling IPAddress accepts (which include inet_aton's decimal, octal and hex forms).</summary>
    public static IPAddress? ParseAddress(string normalizedHost) =>
        normalizedHost.Length > 0 && IPAddress.TryParse(normalizedHost, out var address) ? address : null;

    public static bool IsLocalhostName(string normalizedHost) =>
        normalizedHost == "localhost" || normalizedHost.EndsWith(".localhost", StringComparison.Ordinal);

    private const string NotListed = "is not in Broker:Outbound:AllowedHosts; the broker calls only the hosts listed there";

    private bool Refuses(AddressClass kind) =>
        (kind == AddressClass.Loopback && !_allowLoopback) || (kind == AddressClass.Private && !_allowPrivate);

    private static string Shown(string host, IPAddress? address)
    {
        if (address is null) return host;
        var inner = AddressClasses.Unwrap(address);
        return inner.Equals(address) ? address.ToString() : $"{address} ({inner})";
    }

    private static string Describe(AddressClass kind) => kind switch
    {
        AddressClass.LinkLocal => "is link-local (cloud metadata); " + Never,
        AddressClass.Unspecified => "is an unspecified address (0.0.0.0/8 or ::); " + Never,
        AddressClass.Multicast => "is a multicast address; " + Never,
        AddressClass.Broadcast => "is the broadcast address; " + Never,
        AddressClass.CloudMetadata => "is a cloud metadata endpoint (instance credentials live there); the broker never calls it",
        AddressClass.Loopback => "is loopback; Broker:Outbound:AllowLoopback=true allows it",
        AddressClass.Private => "is in a private network (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7); Broker:Outbound:AllowPrivateNetworks=true allows it",
        _ => "is allowed",
    };
}

/// <summary>Broker:Outbound:AllowedHosts, parsed once: exact names, <c>*.</c> suffixes and addresses.</summary>
internal sealed class AllowedHosts
{
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly List<string> _suffixes = [];
    private readonly List<IPAddress> _addresses = [];
    private bool _any;

    /// <summary>Entries may each hold several names separated by ',' or ';'; <paramref name="invalid"/> lists the ones that are not host patterns.</summary>
    public static AllowedHosts Parse(IEnumerable<string> entries, out List<string> invalid)
    {
        var hosts = new AllowedHosts();
        invalid = [];
        var count = 0;
        foreach (var entry in entries)
        {
            foreach (var raw in entry.Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                count++;
                var name = OutboundPolicy.NormalizeHost(raw);
                // URLs are compared by their ASCII (xn--) host, so a name listed in Unicode is converted.
                if (!System.Text.Ascii.IsValid(name) && Uri.TryCreate($"http://{name}/", UriKind.Absolute, out var idn)) name = idn.IdnHost;
                if (name == "*") hosts._any = true;
                else if (OutboundPolicy.ParseAddress(name) is { } address) hosts._addresses.Add(AddressClasses.Unwrap(address));
                else if (name.StartsWith("*.", StringComparison.Ordinal) && IsDnsName(name[2..])) hosts._suffixes.Add(name[1..]);
                else if (IsDnsName(name)) hosts._names.Add(name);
                else invalid.Add(raw);
            }
        }
        hosts._any |= count == 0;
        return hosts;
    }

    public bool Allows(string normalizedHost, IPAddress? address)
    {
        if (_any || _names.Contains(normalizedHost)) return true;
        if (address is not null)
        {
            var unwrapped = AddressClasses.Unwrap(address);
            return _addresses.Exists(a => a.Equals(unwrapped));
        }
        foreach (var suffix in _suffixes)
        {
            if (normalizedHost.Length > suffix.Length && normalizedHost.EndsWith(suffix, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    private static bool IsDnsName(string name) => Uri.CheckHostName(name) == UriHostNameType.Dns;
}
