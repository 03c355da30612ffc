using System.Net;
using HalfMsgBroker.Hosting;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>The broker around a failed journal (it answers 503, turns unready and stops) and around a quarantine (it serves, Degraded).</summary>
[Trait("Storage", "LiteDb")]
public sealed class JournalFailureHostTests
{
    private static HttpClient Client(WebApplicationFactory<Program> factory)
    {
        var client = factory.CreateClient();
        client.DefaultRequestHeaders.Authorization = new("Bearer", BrokerFactory.AdminKey);
        return client;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_failed_journal_write_or_fsync_answers_503_acknowledges_nothing_later_fails_readiness_and_stops_the_host(bool fsync)
    {
        var files = new FaultyJournalFiles();
        await using var broker = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Storage:Durability"] = "Fsync" });
        var factory = broker.WithWebHostBuilder(b => b.ConfigureServices(s => s.AddSingleton<IJournalFiles>(files)));
        using var c = Client(factory);
        await c.Send("orders");
        var stopping = factory.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        Assert.False(stopping.IsCancellationRequested);
        // Readiness as the host begins to stop (afterwards the test host disposes its services; a real one stops listening first).
        var readiness = factory.Services.GetRequiredService<BrokerReadiness>();
        Task<HealthCheckResult>? atStop = null;
        using var onStop = stopping.Register(() => atStop = readiness.CheckHealthAsync(new HealthCheckContext()));

        if (fsync) files.FailSyncs = true;
        else files.FailWrites = true;
        var failed = await c.Post("/v1/topics/orders/messages", new { body = new { n = 2 } });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.Status);

        files.FailSyncs = files.FailWrites = false;
        var writes = files.Writes;
        await Eventually.Until(() => stopping.IsCancellationRequested, "the host stopping");
        var health = await atStop!;
        Assert.Equal(HealthStatus.Unhealthy, health.Status);
        Assert.Contains("journal write or fsync failed", health.Description, StringComparison.Ordinal);

        try
        {
            // The store refuses it (503), or the stopping host does: either way nothing is acknowledged or journaled.
            var later = await c.Post("/v1/topics/orders/messages", new { body = new { n = 3 } });
            Assert.False(later.Status is >= HttpStatusCode.OK and < HttpStatusCode.MultipleChoices, later.ToString());
        }
        catch (Exception e) when (e is HttpRequestException or InvalidOperationException or OperationCanceledException)
        {
        }
        Assert.Equal(writes, files.Writes);
    }

    [Fact]
    public async Task A_quarantine_keeps_the_broker_ready_but_degraded_with_a_detail_until_it_is_cleared()
    {
        await using var broker = new BrokerFactory();
        var quarantine = Path.Combine(broker.DataPath, "journal", "quarantine");
        Directory.CreateDirectory(quarantine);
        await File.WriteAllTextAsync(Path.Combine(quarantine, "poison-0000000000000000007-messages-x.json"), "{}");
        using var c = broker.CreateClient();

        var ready = await c.GetAsync(new Uri("/health/ready", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.StartsWith("Degraded: 1 item(s) in journal/quarantine/", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var health = await broker.Services.GetRequiredService<BrokerReadiness>().CheckHealthAsync(new HealthCheckContext());
        Assert.Contains("1 item(s) in journal/quarantine/", health.Description, StringComparison.Ordinal);
        await c.Send("orders");
    }
}
