using System.Globalization;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Hosting;
using HalfMsgBroker.Storage.PostgreSql;
using Microsoft.Extensions.Options;
using Npgsql;

namespace HalfMsgBroker.Cluster;

/// <summary>
/// Many active brokers on one database: how far this broker's clock is from PostgreSQL's. Each broker stamps leases,
/// visibility timeouts, retry and check-back due times with its own clock (its <see cref="TimeProvider"/>, which tests
/// move), and compares the stamps other brokers wrote with that clock. So a broker whose clock runs ahead takes over
/// leases before they run out (a second delivery while the first consumer is still at work), and one that runs behind
/// leaves due work waiting. PostgreSQL's clock is the one all brokers share, so each broker measures its distance from it
/// every <see cref="PostgreSqlOptions.ClockCheckInterval"/>, as NTP does: the best of a few reads, taking the middle of
/// each round trip, give or take half of it. The gauge <c>halfmsg.cluster.clock_offset</c> shows it, and past
/// <see cref="PostgreSqlOptions.MaxClockOffset"/> <c>/health/ready</c> reads Degraded and the log says so once.
/// Degraded, not unready: out of the load balancer the broker would still claim deliveries and check-backs, and were
/// PostgreSQL's own clock the one that is off, every broker would go unready at once.
/// </summary>
internal sealed class ClockOffset : BackgroundService
{
    private const int ReadsPerCheck = 3;

    private readonly NpgsqlDataSource _dataSource;
    private readonly TimeProvider _time;
    private readonly PostgreSqlOptions _options;
    private readonly ILogger<ClockOffset> _logger;
    private Reading? _last;
    private bool _warned;

    public ClockOffset(NpgsqlDataSource dataSource, TimeProvider time, IOptions<BrokerOptions> options, BrokerMetrics metrics, ILogger<ClockOffset> logger)
    {
        _dataSource = dataSource;
        _time = time;
        _options = options.Value.Storage.PostgreSql;
        _logger = logger;
        metrics.Meter.CreateObservableGauge("halfmsg.cluster.clock_offset", () => Last?.OffsetMs / 1000.0 ?? 0, "s",
            "This broker's clock minus PostgreSQL's at the last check (Broker:Storage:PostgreSql:ClockCheckInterval); 0 before the first");
    }

    /// <summary>One check: this broker's clock minus PostgreSQL's, and half the round trip it was read in (the error bound).</summary>
    public sealed record Reading(double OffsetMs, double UncertaintyMs);

    /// <summary>The last check's reading; null before the first succeeded.</summary>
    public Reading? Last => Volatile.Read(ref _last);

    /// <summary>Why readiness is Degraded, or null: the clocks are known to differ by more than <see cref="PostgreSqlOptions.MaxClockOffset"/>.</summary>
    public string? Problem => Last is { } r && IsTooFar(r) ? Describe(r) : null;

    private bool IsTooFar(Reading r) => Math.Abs(r.OffsetMs) - r.UncertaintyMs > _options.MaxClockOffset.TotalMilliseconds;

    private string Describe(Reading r) => string.Create(CultureInfo.InvariantCulture,
        $"this broker's clock is {Math.Abs(r.OffsetMs):F0} ms {(r.OffsetMs > 0 ? "ahead of" : "behind")} PostgreSQL's (± {r.UncertaintyMs:F0} ms), more than Broker:Storage:PostgreSql:MaxClockOffset ({_options.MaxClockOffset.TotalMilliseconds:F0} ms): brokers compare each other's lease and due times with their own clocks, so deliveries may be handed out again before their leases run out; synchronise this host's clock (NTP, chrony)");

    /// <summary>Reads the offset now (a few round trips, the shortest kept) and records it.</summary>
    internal async Task<Reading> CheckAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var read = new NpgsqlCommand("SELECT extract(epoch FROM clock_timestamp()) * 1000", connection);
        Reading? best = null;
        for (var i = 0; i < ReadsPerCheck; i++)
        {
            var before = _time.GetUtcNow();
            var database = Convert.ToDouble(await read.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
            var after = _time.GetUtcNow();
            var halfTrip = (after - before).TotalMilliseconds / 2;
            var middle = (before - DateTimeOffset.UnixEpoch).TotalMilliseconds + halfTrip;
            if (best is null || halfTrip < best.UncertaintyMs) best = new Reading(middle - database, halfTrip);
        }
        Volatile.Write(ref _last, best);
        Report(best!);
        return best!;
    }

    private void Report(Reading r)
    {
        var tooFar = IsTooFar(r);
        if (tooFar && !_warned) _logger.LogWarning("Clock offset: {Problem}", Describe(r));
        if (!tooFar && _warned)
        {
            _logger.LogInformation("Clock offset: this broker's clock is now within {Max} ms of PostgreSQL's ({Offset:F0} ms)",
                _options.MaxClockOffset.TotalMilliseconds, r.OffsetMs);
        }
        _warned = tooFar;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await CheckAsync(stoppingToken);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // A failed check never stops the broker: readiness reports PostgreSQL itself, and the last reading stands.
                _logger.Log(PostgreSqlErrors.IsUnavailable(e) ? LogLevel.Debug : LogLevel.Warning, e,
                    "Clock offset check failed; trying again in {Interval}", _options.ClockCheckInterval);
            }
            try
            {
                await Task.Delay(_options.ClockCheckInterval, _time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
