using Microsoft.Extensions.Logging.Console;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// Console logs stay the readable "simple" format unless configuration picks the built-in JSON formatter
/// (<c>Logging:Console:FormatterName=json</c>): one JSON object per line, with the trace and span ids of
/// the request or span it was logged in (<see cref="ActivityTrackingOptions"/>, carried as a scope, so
/// scopes are on by default for JSON; <c>Logging:Console:FormatterOptions:IncludeScopes=false</c> turns
/// them off) and UTC ISO-8601 timestamps.
/// </summary>
internal static class BrokerLogging
{
    public static WebApplicationBuilder AddBrokerLogging(this WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection("Logging:Console:FormatterOptions");
        builder.Logging.Configure(o => o.ActivityTrackingOptions =
            ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId | ActivityTrackingOptions.ParentId);
        // Runs after the formatter's own binding of the section, so only what the section leaves unset is defaulted here.
        builder.Services.Configure<JsonConsoleFormatterOptions>(o =>
        {
            o.IncludeScopes = options.GetValue("IncludeScopes", true);
            o.UseUtcTimestamp = options.GetValue("UseUtcTimestamp", true);
            o.TimestampFormat = options["TimestampFormat"] ?? "yyyy-MM-ddTHH:mm:ss.fffZ";
        });
        return builder;
    }
}
