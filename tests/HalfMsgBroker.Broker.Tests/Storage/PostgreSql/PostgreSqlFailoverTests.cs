using System.Net;
using HalfMsgBroker.Hosting;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>Two broker processes on one database: one active, one standby that takes over when the active one is killed.</summary>
public sealed class PostgreSqlFailoverTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [SingleActivePostgresFact]
    public async Task A_standby_waits_without_listening_and_takes_over_with_everything_acknowledged_after_kill_9()
    {
        var database = await cluster.CreateDatabaseAsync("failover");
        var dataA = Path.Combine(Path.GetTempPath(), "halfmsg-failover", Guid.NewGuid().ToString("N"));
        var dataB = Path.Combine(Path.GetTempPath(), "halfmsg-failover", Guid.NewGuid().ToString("N"));
        string[] settings =
        [
            "--Broker:Storage:Provider=PostgreSql", $"--ConnectionStrings:HalfMsg={database}",
            "--Logging:LogLevel:HalfMsgBroker.Storage.PostgreSql=Information", "--Broker:Storage:PostgreSql:LockCheckInterval=00:00:00.200",
        ];
        try
        {
            await using var a = await BrokerProcess.Start(dataA, settings);
            await a.Client.Subscribe("g", "orders");
            var acknowledged = new List<string>();
            for (var i = 0; i < 20; i++) acknowledged.Add(await a.Client.Send("orders", new { i }));
            await a.Client.SendHalf("orders", "tx-1");
            Assert.Equal(HttpStatusCode.OK, (await a.Client.Post("/v1/transactions/tx-1/commit")).Status);

            await using var b = BrokerProcess.Launch(dataB, settings);
            await Eventually.Until(() => b.OutputLines.Any(l => l.Contains("waiting: another broker holds the database", StringComparison.Ordinal)),
                "the standby saying it waits", TimeSpan.FromSeconds(60));
            await Assert.ThrowsAsync<HttpRequestException>(() => b.Client.GetAsync(new Uri("/health/ready", UriKind.Relative)));

            a.Kill();
            await b.WaitUntilReady();
            foreach (var id in acknowledged) Assert.Equal(HttpStatusCode.OK, (await b.Client.Get($"/v1/messages/{id}")).Status);
            Assert.Equal("committed", (await b.Client.Transaction("tx-1")).Str("state"));
            var delivered = new HashSet<string>();
            await Eventually.Until(async () =>
            {
                foreach (var m in await b.Client.Receive("g", "orders", max: 32, wait: 1)) delivered.Add(m!.Str("messageId"));
                return delivered.Count;
            }, n => n >= 21, "every acknowledged message delivered by the new active broker");

            // If its lock connection goes, the active broker stops with its own exit code.
            await using (var admin = new NpgsqlConnection(database))
            {
                await admin.OpenAsync();
                await using var kill = new NpgsqlCommand(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'halfmsg-broker-lock' AND datname = current_database()", admin);
                Assert.Equal(1L, await kill.ExecuteScalarAsync());
            }
            await Eventually.Until(() => b.ExitCode is not null, "the broker stopping", TimeSpan.FromSeconds(30));
            Assert.True(b.ExitCode == BrokerExit.DatabaseLockLost, $"exit code {b.ExitCode}: " + string.Join('\n', b.OutputLines.Concat(b.ErrorLines).TakeLast(60)));
        }
        finally
        {
            BrokerFactory.TryDelete(dataA);
            BrokerFactory.TryDelete(dataB);
        }
    }

    [PostgresFact]
    public async Task A_database_with_a_newer_schema_refuses_the_start_with_a_Critical_line_and_exit_code_6()
    {
        var database = await cluster.CreateDatabaseAsync("newer");
        await using (var dataSource = NpgsqlDataSource.Create(database))
        {
            PostgreSqlSchema.Migrate(dataSource);
            await using var newer = dataSource.CreateCommand("INSERT INTO halfmsg_schema_version (version) VALUES (99)");
            await newer.ExecuteNonQueryAsync();
        }
        var data = Path.Combine(Path.GetTempPath(), "halfmsg-failover", Guid.NewGuid().ToString("N"));
        try
        {
            await using var broker = BrokerProcess.Launch(data, "--Broker:Storage:Provider=PostgreSql", $"--ConnectionStrings:HalfMsg={database}");
            await Eventually.Until(() => broker.ExitCode is not null, "the broker refusing to start", TimeSpan.FromSeconds(60));
            var output = string.Join('\n', broker.OutputLines.Concat(broker.ErrorLines));
            Assert.True(broker.ExitCode == BrokerExit.DatabaseRefusedStart, $"exit code {broker.ExitCode}: {output}");
            Assert.Contains("newer than this broker knows", output, StringComparison.Ordinal);
            Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
        }
        finally
        {
            BrokerFactory.TryDelete(data);
        }
    }

    [PostgresTheory]
    [InlineData("Username=nobody_here", "nobody_here")]
    [InlineData("Database=no_such_database", "no_such_database")]
    public async Task A_refused_login_or_a_missing_database_refuses_the_start_at_once_with_exit_code_6_instead_of_waiting(string change, string named)
    {
        var database = await cluster.CreateDatabaseAsync("refused");
        var (key, value) = (change.Split('=')[0], change.Split('=')[1]);
        var builder = new NpgsqlConnectionStringBuilder(database) { [key] = value };
        var data = Path.Combine(Path.GetTempPath(), "halfmsg-failover", Guid.NewGuid().ToString("N"));
        try
        {
            await using var broker = BrokerProcess.Launch(data, "--Broker:Storage:Provider=PostgreSql", $"--ConnectionStrings:HalfMsg={builder.ConnectionString}");
            await Eventually.Until(() => broker.ExitCode is not null, "the broker refusing to start", TimeSpan.FromSeconds(60));
            var output = string.Join('\n', broker.OutputLines.Concat(broker.ErrorLines));
            Assert.True(broker.ExitCode == BrokerExit.DatabaseRefusedStart, $"exit code {broker.ExitCode}: {output}");
            Assert.Contains("cannot start on PostgreSQL", output, StringComparison.Ordinal);
            Assert.Contains(named, output, StringComparison.Ordinal);
            Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
            Assert.DoesNotContain("retrying", output, StringComparison.Ordinal);
        }
        finally
        {
            BrokerFactory.TryDelete(data);
        }
    }
}
