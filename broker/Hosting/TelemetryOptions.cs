namespace HalfMsgBroker.Hosting;

/// <summary><c>Broker:Telemetry</c>: what the broker records and exports besides the standard <c>OTEL_*</c> variables.</summary>
public sealed class TelemetryOptions
{
    public const string Section = "Broker:Telemetry";

    /// <summary>
    /// Record traces. Null (the default): only when an OTLP endpoint is configured
    /// (<c>OTEL_EXPORTER_OTLP_ENDPOINT</c> or <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c>), so a broker
    /// nobody traces makes no spans at all.
    /// </summary>
    public bool? Tracing { get; set; }

    /// <summary>Serve the metrics at <c>/metrics</c> in Prometheus' text format (admin key when keys are on).</summary>
    public bool Prometheus { get; set; } = true;

    /// <summary>
    /// Also record ASP.NET Core's and HttpClient's own metrics (request durations and the like). Off by
    /// default: they cost a histogram record with several tags on every request.
    /// </summary>
    public bool HttpMetrics { get; set; }

    /// <summary>How old the figures read from the store (prepared transactions, dead letters) may be when a scrape reads them.</summary>
    public TimeSpan StoreFiguresMaxAge { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How long one reading of the per-subscription delivery counts serves the gauges (so a scrape reads them once, not once per gauge).</summary>
    public TimeSpan DeliveryFiguresMaxAge { get; set; } = TimeSpan.FromSeconds(1);
}
