using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Access;

/// <summary>A new endpoint is closed until someone decides who may call it.</summary>
public sealed class EndpointPolicyTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    [Fact]
    public void Every_v1_endpoint_names_an_authorization_policy()
    {
        var endpoints = broker.Factory.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        var v1 = endpoints.Where(e => e.RoutePattern.RawText?.StartsWith("/v1", StringComparison.Ordinal) == true).ToList();
        Assert.True(v1.Count >= 25, $"expected the whole API, found {v1.Count} /v1 endpoints");

        var open = v1
            .Where(e => e.Metadata.GetMetadata<IAllowAnonymous>() is not null
                || !e.Metadata.GetOrderedMetadata<IAuthorizeData>().Any(a => !string.IsNullOrEmpty(a.Policy)))
            .Select(e => $"{string.Join(',', e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? [])} {e.RoutePattern.RawText}")
            .ToList();
        Assert.True(open.Count == 0, "endpoints without an authorization policy: " + string.Join("; ", open));
    }

    [Fact]
    public void Only_health_the_openapi_document_its_reference_page_and_the_console_files_are_anonymous()
    {
        var endpoints = broker.Factory.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>();
        var anonymous = endpoints.Where(e => e.Metadata.GetMetadata<IAllowAnonymous>() is not null)
            .Select(e => e.RoutePattern.RawText!).Order(StringComparer.Ordinal).ToList();
        // /scalar is the page, its scripts and its icon (Scalar.AspNetCore maps one endpoint each).
        // /console/{*file} is the operator console's static files: no data, which comes from /v1 with a key.
        Assert.Equal(["/console/{*file}", "/health/live", "/health/ready", "/openapi/{documentName}.json"],
            anonymous.Where(p => !p.StartsWith("/scalar", StringComparison.Ordinal)));
        Assert.Contains("/scalar/scalar.js", anonymous);
    }

    [Fact]
    public void The_metrics_scrape_needs_the_admin_policy()
    {
        var metrics = Assert.Single(broker.Factory.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>(),
            e => e.RoutePattern.RawText == "/metrics");
        Assert.Null(metrics.Metadata.GetMetadata<IAllowAnonymous>());
        Assert.Equal(["admin"], metrics.Metadata.GetOrderedMetadata<IAuthorizeData>().Select(a => a.Policy));
    }
}
