using HalfMsgBroker.Access;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Scalar.AspNetCore;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// OpenTelemetry for the broker: its meter always (read at <c>/metrics</c>), its traces when an OTLP
/// endpoint is configured (or <c>Broker:Telemetry:Tracing</c> says so), and the OTLP exporter only when
/// an endpoint is configured, so a plain start exports nothing and connects nowhere. The exporter reads
/// the standard <c>OTEL_*</c> variables itself (endpoint, protocol, headers, service name).
/// Also the API reference at <c>/scalar</c>.
/// </summary>
internal static class BrokerTelemetry
{
    public static WebApplicationBuilder AddBrokerTelemetry(this WebApplicationBuilder builder)
    {
        var config = builder.Configuration;
        var services = builder.Services;
        var section = config.GetSection(TelemetryOptions.Section);
        var options = section.Get<TelemetryOptions>() ?? new TelemetryOptions();
        services.AddOptions<TelemetryOptions>().Bind(section)
            .Validate(o => o.StoreFiguresMaxAge > TimeSpan.Zero, "Broker:Telemetry:StoreFiguresMaxAge must be > 0")
            .Validate(o => o.DeliveryFiguresMaxAge > TimeSpan.Zero, "Broker:Telemetry:DeliveryFiguresMaxAge must be > 0")
            .ValidateOnStart();
        services.AddSingleton<BrokerMetrics>();
        services.AddHostedService<BrokerGauges>();

        var otlpMetrics = HasEndpoint(config, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
        var otlpTraces = HasEndpoint(config, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        var otel = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(config["OTEL_SERVICE_NAME"] is { Length: > 0 } name ? name : "halfmsg-broker"))
            .WithMetrics(m =>
            {
                m.AddMeter(BrokerMetrics.MeterName);
                // Meters are process-wide and OpenTelemetry tells them apart by name only: another host in the
                // process (tests host several brokers) would merge its figures into this one's, and its
                // disposal would end this host's streams. Only this host's IMeterFactory's meter counts.
                ((IDeferredMeterProviderBuilder)m).Configure((sp, b) =>
                {
                    var own = sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
                    b.AddView(i => i.Meter.Name == BrokerMetrics.MeterName && !ReferenceEquals(i.Meter.Scope, own) ? MetricStreamConfiguration.Drop : null);
                });
                if (options.HttpMetrics) m.AddAspNetCoreInstrumentation().AddHttpClientInstrumentation();
                if (options.Prometheus) m.AddPrometheusExporter();
                if (otlpMetrics) m.AddOtlpExporter();
            });
        if (options.Tracing ?? otlpTraces)
        {
            otel.WithTracing(t =>
            {
                t.AddSource(BrokerTracing.SourceName)
                    .AddAspNetCoreInstrumentation(o => o.Filter = IsTraced)
                    .AddHttpClientInstrumentation();
                if (otlpTraces) t.AddOtlpExporter();
            });
        }
        return builder;
    }

    /// <summary><c>/metrics</c> (admin policy: the admin key when keys are on) and the API reference at <c>/scalar</c> (anonymous, like the OpenAPI document it shows).</summary>
    public static WebApplication MapBrokerTelemetry(this WebApplication app)
    {
        if (app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<TelemetryOptions>>().Value.Prometheus)
        {
            app.MapPrometheusScrapingEndpoint("/metrics").RequireAuthorization(Policies.Admin);
        }
        // The page and its script come from the broker itself; nothing that would reach another origin on its own
        // (web fonts, usage telemetry, the hosted AI agent and MCP features) is left on.
        app.MapScalarApiReference("/scalar", o => o.WithTitle("HalfMsgBroker API")
                .DisableDefaultFonts().DisableTelemetry().DisableAgent().DisableMcp())
            .AllowAnonymous();
        return app;
    }

    /// <summary>Scrapes and health probes would bury the traces of messages.</summary>
    private static bool IsTraced(HttpContext context) =>
        !context.Request.Path.StartsWithSegments("/metrics") && !context.Request.Path.StartsWithSegments("/health");

    private static bool HasEndpoint(IConfiguration config, string signalKey) =>
        !string.IsNullOrWhiteSpace(config["OTEL_EXPORTER_OTLP_ENDPOINT"]) || !string.IsNullOrWhiteSpace(config[signalKey]);
}
