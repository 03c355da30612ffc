using System.Net;
using System.Net.Sockets;

namespace HalfMsgBroker.Outbound;

/// <summary>What kind of destination an IP address is, as far as the outbound guard cares.</summary>
internal enum AddressClass
{
    Public,
    Private,
    Loopback,
    LinkLocal,
    Unspecified,
    Multicast,
    Broadcast,

    /// <summary>A cloud metadata endpoint outside link-local (AWS's IPv6 one, Alibaba Cloud's).</summary>
    CloudMetadata,
}

internal static class AddressClasses
{
    /// <summary>Classes no setting allows: nothing a client registers may reach them.</summary>
    public static bool IsNeverAllowed(AddressClass c) =>
        c is AddressClass.LinkLocal or AddressClass.Unspecified or AddressClass.Multicast or AddressClass.Broadcast or AddressClass.CloudMetadata;

    // Most clouds serve instance metadata (credentials included) on 169.254.169.254, which is
    // link-local; these two are not, so they are named. Both sit in ranges that are otherwise private.
    private static readonly IPAddress[] MetadataOutsideLinkLocal = [IPAddress.Parse("fd00:ec2::254"), IPAddress.Parse("100.100.100.200")];

    /// <summary>
    /// Classifies by the address's bytes after <see cref="Unwrap"/>, so every spelling of one
    /// address (decimal, octal, hex, IPv4-mapped IPv6) lands in the same class.
    /// </summary>
    public static AddressClass Classify(IPAddress address)
    {
        var a = Unwrap(address);
        if (Array.IndexOf(MetadataOutsideLinkLocal, a) >= 0) return AddressClass.CloudMetadata;
        Span<byte> b = stackalloc byte[16];
        a.TryWriteBytes(b, out var length);
        return a.AddressFamily == AddressFamily.InterNetwork ? ClassifyV4(b[..length]) : ClassifyV6(b[..length]);
    }

    /// <summary>
    /// The IPv4 address an IPv6 address carries: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible
    /// (::a.b.c.d, deprecated but still routed by some stacks) and the NAT64 well-known prefix
    /// (64:ff9b::a.b.c.d). Anything else comes back unchanged.
    /// </summary>
    public static IPAddress Unwrap(IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return address;
        if (address.IsIPv4MappedToIPv6) return address.MapToIPv4();

        Span<byte> b = stackalloc byte[16];
        address.TryWriteBytes(b, out _);
        var first96Zero = !b[..12].ContainsAnyExcept((byte)0);
        // :: and ::1 are IPv6's own unspecified and loopback addresses, not wrapped IPv4.
        var compatible = first96Zero && ((b[12] | b[13] | b[14]) != 0 || b[15] > 1);
        var nat64 = b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && !b[4..12].ContainsAnyExcept((byte)0);
        return compatible || nat64 ? new IPAddress(b[12..]) : address;
    }

    private static AddressClass ClassifyV4(ReadOnlySpan<byte> b) => b[0] switch
    {
        // 0.0.0.0/8, "this network": on Linux, connecting to 0.0.0.0 reaches the local host.
        0 => AddressClass.Unspecified,
        127 => AddressClass.Loopback,
        10 => AddressClass.Private,
        100 when (b[1] & 0xC0) == 64 => AddressClass.Private,
        169 when b[1] == 254 => AddressClass.LinkLocal,
        172 when (b[1] & 0xF0) == 16 => AddressClass.Private,
        192 when b[1] == 168 => AddressClass.Private,
        >= 224 and <= 239 => AddressClass.Multicast,
        255 when b[1] == 255 && b[2] == 255 && b[3] == 255 => AddressClass.Broadcast,
        _ => AddressClass.Public,
    };

    private static AddressClass ClassifyV6(ReadOnlySpan<byte> b)
    {
        // Unwrap left only :: and ::1 with 120 leading zero bits.
        if (!b[..15].ContainsAnyExcept((byte)0)) return b[15] == 0 ? AddressClass.Unspecified : AddressClass.Loopback;
        if (b[0] == 0xff) return AddressClass.Multicast;
        if (b[0] == 0xfe && (b[1] & 0xC0) == 0x80) return AddressClass.LinkLocal;
        // fec0::/10 is the deprecated site-local range: private by any reading.
        if (b[0] == 0xfe && (b[1] & 0xC0) == 0xC0) return AddressClass.Private;
        if ((b[0] & 0xFE) == 0xFC) return AddressClass.Private;
        return AddressClass.Public;
    }
}
