using System.Net;
using System.Net.Sockets;

namespace HalfMsgBroker.Outbound;

/// <summary>Name resolution for outbound connections; a seam so tests can point a name at loopback.</summary>
internal interface IOutboundResolver
{
    Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken);
}

internal sealed class DnsOutboundResolver : IOutboundResolver
{
    public Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken) =>
        Dns.GetHostAddressesAsync(host, cancellationToken);
}

/// <summary>The policy refused a connection; <see cref="OutboundErrors"/> reports it as <c>url-not-allowed</c>.</summary>
internal sealed class OutboundRefusedException(OutboundRefusal refusal) : Exception(refusal.ToString())
{
    public OutboundRefusal Refusal { get; } = refusal;
}

/// <summary>
/// The outbound handler's ConnectCallback: resolves the host itself, drops every address the policy
/// refuses and connects to the others in turn (as the default connect does), so the address checked
/// is the address connected to — a name that resolves to 169.254.169.254, or re-resolves there
/// later (DNS rebinding), never gets a connection.
/// </summary>
internal sealed class GuardedConnector(OutboundPolicy policy, IOutboundResolver resolver)
{
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var (host, port) = (context.DnsEndPoint.Host, context.DnsEndPoint.Port);
        context.InitialRequestMessage.Options.TryGetValue(ConnectProgress.Key, out var progress);
        progress?.Started();
        if (policy.CheckHost(host) is { } notListed) throw new OutboundRefusedException(notListed);

        var addresses = await resolver.ResolveAsync(host, cancellationToken);
        OutboundRefusal? refused = null;
        SocketException? failed = null;
        foreach (var address in addresses)
        {
            if (policy.CheckAddress(address) is { } refusal)
            {
                refused ??= refusal;
                continue;
            }
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, port), cancellationToken);
                progress?.Connected();
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                failed = e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        // An allowed address that failed says more than the refused ones beside it.
        if (failed is not null) throw failed;
        if (refused is not null) throw new OutboundRefusedException(refused);
        throw new SocketException((int)SocketError.HostNotFound);
    }
}
