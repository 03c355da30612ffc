using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// <c>/health/ready</c>'s body: the status word as before (<c>Healthy</c>, <c>Degraded</c>,
/// <c>Unhealthy</c>), followed by why when there is a reason, so an operator reading it needs no log.
/// </summary>
internal static class ReadinessResponse
{
    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        var why = string.Join("; ", report.Entries.Values.Select(e => e.Description).Where(d => !string.IsNullOrEmpty(d)));
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(why.Length == 0 ? report.Status.ToString() : $"{report.Status}: {why}");
    }
}
