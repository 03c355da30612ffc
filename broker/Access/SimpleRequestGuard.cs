using HalfMsgBroker.Api;

namespace HalfMsgBroker.Access;

/// <summary>
/// A browser sends a "simple" cross-site request (a form post, or a fetch without custom headers or
/// a JSON type) without asking first. So a state-changing <c>/v1</c> request must carry either a
/// JSON content type or an <c>Authorization</c> header; both make a browser ask the broker first,
/// and the broker never says yes (it sends no CORS headers). This is what keeps a web page from
/// committing transactions on a keyless loopback broker.
/// </summary>
internal sealed class SimpleRequestGuard(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method) || HttpMethods.IsOptions(request.Method)
            || request.Headers.Authorization.Count > 0 || IsJson(request.ContentType)
            || !request.Path.StartsWithSegments("/v1", StringComparison.Ordinal))
        {
            return next(context);
        }
        return Problems.Of(415, "unsupported-media-type", "Unsupported media type",
            $"A {request.Method} needs 'Content-Type: application/json' (even with an empty body) or an Authorization header; " +
            "this keeps web pages from changing the broker's state through a browser's simple requests.").ExecuteAsync(context);
    }

    private static bool IsJson(string? contentType) =>
        contentType is not null
        && (contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase)
            || (contentType.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && contentType.Contains("+json", StringComparison.OrdinalIgnoreCase)));
}
