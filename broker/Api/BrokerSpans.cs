using System.Diagnostics;
using HalfMsgBroker.Hosting;

namespace HalfMsgBroker.Api;

/// <summary>Endpoint metadata naming the broker span a request gets (see <see cref="BrokerTracing.StartOperation"/>).</summary>
internal sealed record BrokerSpan(string Operation);

internal static class BrokerSpanExtensions
{
    /// <summary>Requests to this endpoint get a broker span named <paramref name="operation"/> while traces are recorded.</summary>
    public static TBuilder WithBrokerSpan<TBuilder>(this TBuilder builder, string operation)
        where TBuilder : IEndpointConventionBuilder => builder.WithMetadata(new BrokerSpan(operation));

    /// <summary>Starts the endpoint's broker span around the handler; a no-op (no state machine, no lookup) unless someone listens.</summary>
    public static IApplicationBuilder UseBrokerSpans(this IApplicationBuilder app) => app.Use(static (context, next) =>
        BrokerTracing.Source.HasListeners() && context.GetEndpoint()?.Metadata.GetMetadata<BrokerSpan>() is { } span
            ? TracedAsync(context, next, span)
            : next(context));

    private static async Task TracedAsync(HttpContext context, RequestDelegate next, BrokerSpan span)
    {
        using var activity = BrokerTracing.StartOperation(span.Operation, context.Request.RouteValues);
        await next(context);
        if (activity is not null && context.Response.StatusCode >= 400) activity.SetStatus(ActivityStatusCode.Error, "http " + context.Response.StatusCode);
    }
}
