using System.Collections.Concurrent;
using System.Net;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// PostgreSQL restarting under two active brokers' load: requests meanwhile get 503 storage-unavailable (never a 500),
/// the brokers carry on once it is back (a batch whose commit got no answer does not stop them: they keep nothing
/// from one batch to the next), and everything acknowledged is there. The cluster is this class's own.
/// </summary>
public sealed class MultiActiveDatabaseRestartTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task Restarting_PostgreSQL_under_load_gives_503s_then_both_brokers_carry_on_and_lose_nothing_acknowledged()
    {
        var database = await cluster.CreateDatabaseAsync("restart");
        // Short connect and command timeouts: a request during the outage answers soon instead of waiting 30 s.
        // The brokers reach PostgreSQL through a proxy, so the network can also fail with batches in flight (no answer at all).
        var direct = new NpgsqlConnectionStringBuilder(database);
        await using var proxy = TcpProxy.Start(direct.Port);
        var quick = new NpgsqlConnectionStringBuilder(database) { Port = proxy.Port, Timeout = 3, CommandTimeout = 5 }.ConnectionString;
        var nodes = MultiActiveNodes.Start(quick, 2);
        var clients = nodes.Select(n => n.CreateClient()).ToList();
        var sent = new ConcurrentBag<string>();
        var committed = new ConcurrentBag<string>();
        var refusals = new ConcurrentBag<string>();
        var unexpected = new ConcurrentBag<string>();
        var afterRestart = new int[2];
        var restarted = 0;
        using var stop = new CancellationTokenSource();
        try
        {
            async Task Load(int worker, CancellationToken until)
            {
                for (var i = 0; !until.IsCancellationRequested; i++)
                {
                    var tx = $"w{worker}-{Guid.NewGuid():N}";
                    var (half, end) = (clients[worker % 2], clients[(worker + 1) % 2]);
                    var answer = await half.Post("/v1/topics/orders/half-messages", new { producerGroup = "order-service", transactionId = tx, body = new { i } });
                    if (!Judge(answer, HttpStatusCode.Created)) continue;
                    sent.Add(tx);
                    var commit = await end.Post($"/v1/transactions/{tx}/commit");
                    if (!Judge(commit, HttpStatusCode.OK)) continue;
                    committed.Add(tx);
                    if (Volatile.Read(ref restarted) == 1) Interlocked.Increment(ref afterRestart[(worker + 1) % 2]);
                }
            }

            bool Judge(Http.Answer answer, HttpStatusCode expected)
            {
                if (answer.Status == expected) return true;
                if (answer.Status == HttpStatusCode.ServiceUnavailable && answer.Code == "storage-unavailable") refusals.Add(answer.Raw);
                else unexpected.Add(answer.ToString());
                return false;
            }

            using var before = new CancellationTokenSource();
            var warmUp = Enumerable.Range(0, 4).Select(w => Task.Run(() => Load(w, before.Token))).ToList();
            await Eventually.Until(() => committed.Count >= 50, "some load before the restart");
            await before.CancelAsync();
            await Task.WhenAll(warmUp);

            // Hold a half message's batch in flight on each broker (waiting for a table lock), then cut the network and restart
            // PostgreSQL: a batch that was sent and got no answer has an unknown outcome, which must not stop a broker that
            // keeps nothing between batches. The load goes on meanwhile and queues behind them.
            var blocker = new NpgsqlConnection(database);
            await blocker.OpenAsync();
            var hold = await blocker.BeginTransactionAsync();
            await using (var lockTable = new NpgsqlCommand("LOCK TABLE halfmsg_messages IN EXCLUSIVE MODE", blocker, hold)) await lockTable.ExecuteNonQueryAsync();
            var held = clients.Select((c, i) => c.Post("/v1/topics/orders/half-messages", new { producerGroup = "order-service", transactionId = $"held-{i}", body = new { i } })).ToList();
            await Eventually.Until(async () =>
            {
                await using var waiting = new NpgsqlCommand(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", blocker, hold);
                return (long)(await waiting.ExecuteScalarAsync())!;
            }, n => n == 2, "both brokers' writers waiting on the table");
            var workers = Enumerable.Range(0, 4).Select(w => Task.Run(() => Load(w, stop.Token))).ToList();
            proxy.Cut();
            await cluster.RestartAsync(TimeSpan.FromSeconds(1));
            try
            {
                await blocker.DisposeAsync();
            }
            catch (NpgsqlException)
            {
                // its session ended with the server
            }
            proxy.Restore();
            Volatile.Write(ref restarted, 1);
            foreach (var answer in await Task.WhenAll(held))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, answer.Status);
                Assert.Equal("storage-unavailable", answer.Code);
                Assert.Contains("is unknown", answer.Json.Str("detail"), StringComparison.Ordinal);
            }

            await Eventually.Until(() => Volatile.Read(ref afterRestart[0]) >= 20 && Volatile.Read(ref afterRestart[1]) >= 20,
                "both brokers to take commits again after the restart", TimeSpan.FromSeconds(60));
            await stop.CancelAsync();
            await Task.WhenAll(workers);

            Assert.Empty(unexpected);
            Assert.NotEmpty(refusals);
            foreach (var node in nodes) Assert.Equal(HttpStatusCode.OK, (await node.CreateClient().Get("/health/ready")).Status);
            foreach (var tx in sent)
            {
                var state = (await clients[0].Transaction(tx)).Str("state");
                Assert.True(committed.Contains(tx) ? state == "committed" : state is "prepared" or "committed", $"{tx}: {state}");
            }
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var client in clients) client.Dispose();
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }
}
