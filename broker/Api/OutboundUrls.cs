using HalfMsgBroker.Outbound;

namespace HalfMsgBroker.Api;

/// <summary>The registration half of the outbound guard, for the endpoints that store a URL the broker will call.</summary>
internal static class OutboundUrls
{
    /// <summary>
    /// A <c>400 url-not-allowed</c> problem naming the host and why, when the broker would never call
    /// <paramref name="url"/>; null when it may (or there is no URL). The name is not resolved here:
    /// where it leads is checked at every connection.
    /// </summary>
    public static IResult? Refuse(HttpRequest request, string field, string? url)
    {
        if (url is null) return null;
        var refusal = request.HttpContext.RequestServices.GetRequiredService<OutboundPolicy>().CheckUrl(url);
        if (refusal is null) return null;
        var message = refusal.ToString();
        return Problems.Of(400, "url-not-allowed", "URL not allowed", $"{field} {message}",
            new Dictionary<string, string[]> { [field] = [message] });
    }
}
