namespace HalfMsgBroker.Configuration;

/// <summary>
/// The <c>Broker:Outbound</c> section: where the broker may call (check-back and push URLs). Link-local,
/// unspecified, multicast and broadcast addresses are refused whatever these say; they only narrow.
/// </summary>
public sealed class OutboundOptions
{
    /// <summary>
    /// Host names the broker may call, <c>*.example.com</c> for any name under example.com (not
    /// example.com itself), or IP addresses. Empty (or <c>*</c>) means any host. A single string with
    /// names separated by <c>,</c> or <c>;</c> works too (handy in an environment variable).
    /// </summary>
    public List<string> AllowedHosts { get; set; } = [];

    /// <summary>127.0.0.0/8, ::1, and the names <c>localhost</c> and <c>*.localhost</c>.</summary>
    public bool AllowLoopback { get; set; } = true;

    /// <summary>10/8, 172.16/12, 192.168/16, 100.64/10 (carrier-grade NAT) and fc00::/7.</summary>
    public bool AllowPrivateNetworks { get; set; } = true;
}
