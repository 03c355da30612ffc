using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using HalfMsgBroker.Outbound;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Support;

/// <summary>
/// The broker's outbound name resolution for tests: the listed alias names resolve to 127.0.0.1,
/// <c>localhost</c> and loopback literals to themselves, and anything else fails as "host not
/// found" — so a broker using it cannot reach past loopback even if its guard were broken. Every
/// host the broker asked for is recorded.
/// </summary>
internal sealed class LoopbackResolver(params string[] aliases) : IOutboundResolver
{
    private readonly HashSet<string> _aliases = new(aliases, StringComparer.OrdinalIgnoreCase);

    public ConcurrentQueue<string> Asked { get; } = new();

    public Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken)
    {
        Asked.Enqueue(host);
        var name = host.Trim('[', ']').TrimEnd('.');
        if (_aliases.Contains(name)) return Task.FromResult(new[] { IPAddress.Loopback });
        if (name.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return Task.FromResult(new[] { IPAddress.Loopback });
        if (IPAddress.TryParse(name, out var address) && IPAddress.IsLoopback(address)) return Task.FromResult(new[] { address });
        throw new SocketException((int)SocketError.HostNotFound);
    }
}

internal static class LoopbackResolverHosting
{
    /// <summary>The broker of <paramref name="factory"/> with <paramref name="resolver"/> in place of DNS (dispose the factory, not this).</summary>
    public static WebApplicationFactory<Program> With(this BrokerFactory factory, LoopbackResolver resolver) =>
        factory.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<IOutboundResolver>(resolver)));
}
