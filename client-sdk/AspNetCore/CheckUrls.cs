using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Client;

/// <summary>Marks the endpoints <c>MapHalfMsgCheck</c> maps, so the producer can find their route.</summary>
internal sealed class HalfMsgCheckEndpointMetadata;

/// <summary>
/// Derives a producer group's check URL, so it is written once: <see cref="HalfMsgClientOptions.PublicBaseAddress"/>
/// (or, without one, the address the server listens on) followed by the route of the app's check endpoint.
/// Runs once the app has started, when the endpoints and the server's addresses are known.
/// </summary>
internal static class CheckUrls
{
    public static Uri Resolve(IServiceProvider services, string? checkPath)
    {
        var path = checkPath ?? MappedCheckRoute(services);
        var baseAddress = services.GetRequiredService<IOptions<HalfMsgClientOptions>>().Value.PublicBaseAddress ?? ListeningAddress(services);
        return new Uri(baseAddress.OriginalString.TrimEnd('/') + path, UriKind.Absolute);
    }

    private static string MappedCheckRoute(IServiceProvider services)
    {
        var routes = (services.GetService<EndpointDataSource>()?.Endpoints ?? [])
            .OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<HalfMsgCheckEndpointMetadata>() is not null)
            .Select(e => e.RoutePattern)
            .ToList();
        if (routes.Count != 1)
        {
            throw new InvalidOperationException(routes.Count == 0
                ? "No check endpoint to derive the producer group's check URL from: map one with app.MapHalfMsgCheck(\"/halfmsg/check\"), or give the producer a CheckUrl."
                : "The app maps several check endpoints (MapHalfMsgCheck): set the producer's CheckPath to the route it should use.");
        }

        if (routes[0].Parameters.Count > 0)
        {
            throw new InvalidOperationException($"The check route '{routes[0].RawText}' has parameters: set the producer's CheckPath to a concrete path.");
        }

        return "/" + (routes[0].RawText ?? string.Empty).TrimStart('/');
    }

    private static Uri ListeningAddress(IServiceProvider services)
    {
        var addresses = services.GetService<IServer>()?.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        foreach (var address in addresses)
        {
            if (Uri.TryCreate(address, UriKind.Absolute, out var uri) && !IsWildcard(uri.Host) && !address.Contains("://+", StringComparison.Ordinal) && !address.Contains("://*", StringComparison.Ordinal))
            {
                return uri;
            }
        }

        throw new InvalidOperationException(
            "Set HalfMsgClientOptions.PublicBaseAddress (HalfMsg:PublicBaseAddress) to the URL at which the broker reaches this app, e.g. http://orders:8080: "
            + "the check URL is that address followed by the check endpoint's route, and the server listens on no address the broker could use ("
            + string.Join(", ", addresses) + ").");
    }

    private static bool IsWildcard(string host) => host is "0.0.0.0" or "[::]" or "::" or "+" or "*";
}
