using System.Net;
using HalfMsgBroker.Cluster;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>Retention runs on the broker holding its lease only; when that broker stops, another takes the sweep over.</summary>
public sealed class MultiActiveSweepTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task The_retention_sweep_runs_on_one_broker_and_another_takes_it_over_once_that_one_stops()
    {
        var database = await cluster.CreateDatabaseAsync("sweep");
        var nodes = MultiActiveNodes.Start(database, 2, new Dictionary<string, string?>
        {
            ["Broker:Storage:PostgreSql:SweepLease"] = "00:00:03",
            ["Broker:Retention:Messages"] = "00:00:00.300",
        });
        try
        {
            var leases = nodes.Select(n => n.Services.GetRequiredService<PostgreSqlSweepLease>()).ToList();
            await Eventually.Until(() => leases.Any(l => l.TimesHeld(Sweeps.Retention) >= 5), "one broker to sweep a few times");
            var holder = leases.FindIndex(l => l.TimesHeld(Sweeps.Retention) >= 5);
            var other = 1 - holder;
            // Both ask at every tick (200 ms); only the holder has swept.
            Assert.Equal(0, leases[other].TimesHeld(Sweeps.Retention));
            Assert.Equal(leases[holder].Holder, await LeaseHolder(database));

            await nodes[holder].DisposeAsync();
            await Eventually.Until(() => leases[other].TimesHeld(Sweeps.Retention) > 0, "the other broker to take the sweep over once the lease ran out");
            Assert.Equal(leases[other].Holder, await LeaseHolder(database));

            // And it sweeps: a message with nothing to deliver is purged once its retention ran out.
            using var client = nodes[other].CreateClient();
            var id = await client.Send("nobody-listens");
            await Eventually.Until(() => client.Get($"/v1/messages/{id}"), a => a.Status == HttpStatusCode.NotFound, "the finished message to be purged");
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }

    private static async Task<string?> LeaseHolder(string database)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var read = new NpgsqlCommand("SELECT holder FROM halfmsg_leases WHERE name = 'retention'", connection);
        return (string?)await read.ExecuteScalarAsync();
    }
}
