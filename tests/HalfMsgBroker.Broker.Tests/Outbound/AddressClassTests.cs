using System.Net;
using HalfMsgBroker.Outbound;

namespace HalfMsgBroker.Tests.Outbound;

public sealed class AddressClassTests
{
    [Theory]
    [InlineData("169.254.169.254", "LinkLocal")]
    [InlineData("169.254.0.1", "LinkLocal")]
    [InlineData("fe80::1", "LinkLocal")]
    [InlineData("febf::1", "LinkLocal")]
    [InlineData("::ffff:169.254.169.254", "LinkLocal")]
    [InlineData("::169.254.169.254", "LinkLocal")]
    [InlineData("64:ff9b::a9fe:a9fe", "LinkLocal")]
    [InlineData("0.0.0.0", "Unspecified")]
    [InlineData("0.1.2.3", "Unspecified")]
    [InlineData("::", "Unspecified")]
    [InlineData("::ffff:0.0.0.0", "Unspecified")]
    [InlineData("224.0.0.1", "Multicast")]
    [InlineData("239.255.255.250", "Multicast")]
    [InlineData("ff02::1", "Multicast")]
    [InlineData("255.255.255.255", "Broadcast")]
    [InlineData("127.0.0.1", "Loopback")]
    [InlineData("127.255.0.9", "Loopback")]
    [InlineData("::1", "Loopback")]
    [InlineData("::ffff:127.0.0.1", "Loopback")]
    [InlineData("10.0.0.1", "Private")]
    [InlineData("172.16.0.1", "Private")]
    [InlineData("172.31.255.255", "Private")]
    [InlineData("192.168.1.1", "Private")]
    [InlineData("100.64.0.1", "Private")]
    [InlineData("100.127.255.255", "Private")]
    [InlineData("fc00::1", "Private")]
    [InlineData("fd12:3456::1", "Private")]
    [InlineData("::ffff:10.1.2.3", "Private")]
    [InlineData("93.184.216.34", "Public")]
    [InlineData("172.32.0.1", "Public")]
    [InlineData("172.15.255.255", "Public")]
    [InlineData("100.128.0.1", "Public")]
    [InlineData("169.255.0.1", "Public")]
    [InlineData("240.0.0.1", "Public")]
    [InlineData("2001:db8::1", "Public")]
    [InlineData("fec0::1", "Private")]
    [InlineData("fd00:ec2::254", "CloudMetadata")]
    [InlineData("100.100.100.200", "CloudMetadata")]
    [InlineData("::ffff:100.100.100.200", "CloudMetadata")]
    public void Addresses_are_classified_by_their_bytes(string address, string expected) =>
        Assert.Equal(expected, AddressClasses.Classify(IPAddress.Parse(address)).ToString());

    [Theory]
    [InlineData("::ffff:169.254.169.254", "169.254.169.254")]
    [InlineData("::169.254.169.254", "169.254.169.254")]
    [InlineData("64:ff9b::a9fe:a9fe", "169.254.169.254")]
    [InlineData("::1", "::1")]
    [InlineData("::", "::")]
    [InlineData("2001:db8::a9fe:a9fe", "2001:db8::a9fe:a9fe")]
    [InlineData("10.0.0.1", "10.0.0.1")]
    public void Wrapped_IPv4_is_unwrapped_before_classifying(string address, string inner) =>
        Assert.Equal(IPAddress.Parse(inner), AddressClasses.Unwrap(IPAddress.Parse(address)));

    [Theory]
    [InlineData("2852039166")]
    [InlineData("0251.0376.0251.0376")]
    [InlineData("0xA9FEA9FE")]
    [InlineData("0xa9.0xfe.0xa9.0xfe")]
    [InlineData("169.254.43518")]
    public void Other_spellings_of_the_metadata_address_parse_to_it(string spelling) =>
        Assert.Equal(IPAddress.Parse("169.254.169.254"), OutboundPolicy.ParseAddress(spelling));
}
