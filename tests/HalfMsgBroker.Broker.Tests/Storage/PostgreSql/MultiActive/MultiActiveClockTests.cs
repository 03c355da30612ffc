using System.Net;
using HalfMsgBroker.Cluster;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// Brokers stamp leases and due times with their own clocks, so each measures how far its clock is from PostgreSQL's:
/// a gauge always, and Degraded readiness past <c>MaxClockOffset</c>. The shifted clock is the broker's
/// <see cref="TimeProvider"/>, the seam every lease and due time is read through.
/// </summary>
public sealed class MultiActiveClockTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    private static readonly Dictionary<string, string?> OftenChecked = new() { ["Broker:Storage:PostgreSql:ClockCheckInterval"] = "00:00:00.200" };

    private sealed class ShiftedTime(TimeSpan by) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + by;
    }

    [PostgresFact]
    public async Task A_broker_whose_clock_runs_ten_seconds_ahead_reads_Degraded_says_why_and_reports_the_offset()
    {
        var database = await cluster.CreateDatabaseAsync("clock_ahead");
        await using var root = MultiActiveNodes.Node(database, OftenChecked);
        await using var node = root.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<TimeProvider>(new ShiftedTime(TimeSpan.FromSeconds(10)))));
        using var client = node.CreateClient();

        var ready = await Eventually.Until(() => client.Get("/health/ready"), a => a.Raw.StartsWith("Degraded", StringComparison.Ordinal), "the offset noticed");

        Assert.Equal(HttpStatusCode.OK, ready.Status); // still serving: Degraded, not unready
        Assert.Contains("ahead of PostgreSQL's", ready.Raw, StringComparison.Ordinal);
        Assert.Contains("MaxClockOffset", ready.Raw, StringComparison.Ordinal);
        var reading = node.Services.GetRequiredService<ClockOffset>().Last!;
        Assert.InRange(reading.OffsetMs, 9_000, 11_000);
        var scrape = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.InRange(ScrapeText.Value(scrape, "halfmsg_cluster_clock_offset_seconds"), 9, 11);
    }

    [PostgresFact]
    public async Task A_broker_on_the_databases_clock_reads_a_small_offset_and_no_clock_problem()
    {
        var database = await cluster.CreateDatabaseAsync("clock_same");
        await using var node = MultiActiveNodes.Node(database, OftenChecked);
        using var client = node.CreateClient();
        var offset = node.Services.GetRequiredService<ClockOffset>();

        await Eventually.Until(() => offset.Last is not null, "a first reading");

        Assert.InRange(offset.Last!.OffsetMs, -500, 500); // PostgreSQL runs on this host: one clock
        Assert.Null(offset.Problem);
        var ready = await client.Get("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.Status);
        Assert.DoesNotContain("clock", ready.Raw, StringComparison.Ordinal);
    }
}
