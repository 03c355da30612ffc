using System.Collections.Concurrent;
using System.Net;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>
/// Three broker processes on one database (<c>MultiActive</c>) under a steady load of sends, commits, receives and acks;
/// one is killed with SIGKILL and started again, then another is killed. Nothing acknowledged is lost, and what the
/// dead nodes' consumers held comes back to the survivors once its lease (2 s) runs out.
/// </summary>
public sealed class MultiActiveChaosTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [Fact]
    public async Task Killing_one_of_three_nodes_twice_under_load_loses_nothing_acknowledged()
    {
        var database = await cluster.CreateDatabaseAsync("chaos");
        string[] settings =
        [
            "--Broker:Storage:Provider=PostgreSql", $"--ConnectionStrings:HalfMsg={database}",
            "--Broker:Storage:PostgreSql:MultiActive=true", "--Broker:Storage:PostgreSql:DeliverySafetyPoll=00:00:01",
            // Check-back claimed once across brokers is another part, not built yet; producers here commit at once.
            "--Broker:Transactions:CheckAfter=00:10:00",
        ];
        string Data() => Path.Combine(Path.GetTempPath(), "halfmsg-chaos", Guid.NewGuid().ToString("N"));
        var nodes = new BrokerProcess?[3];
        var started = new List<BrokerProcess>();
        try
        {
            nodes[0] = await BrokerProcess.Start(Data(), settings);
            await nodes[0]!.Client.Subscribe("g", "orders");
            nodes[1] = await BrokerProcess.Start(Data(), settings);
            nodes[2] = await BrokerProcess.Start(Data(), settings);
            started.AddRange(nodes.OfType<BrokerProcess>());

            var acknowledged = new ConcurrentDictionary<string, byte>();
            var received = new ConcurrentDictionary<string, byte>();
            using var producing = new CancellationTokenSource();
            var produced = false;
            // The consumers' deadline starts when the producers stop: a budget from the start would cut them off while
            // the last acknowledged messages were still on their way on a slow machine, and report them as lost.
            using var consuming = new CancellationTokenSource();
            HttpClient? Alive(int i) => nodes[i % 3] is { ExitCode: null } node ? node.Client : null;

            async Task Produce(int worker)
            {
                for (var n = 0; !producing.IsCancellationRequested; n++)
                {
                    if (Alive(worker + n) is not { } client) continue;
                    try
                    {
                        if (n % 2 == 0)
                        {
                            acknowledged.TryAdd(await client.Send("orders", new { worker, n }), 0);
                            continue;
                        }
                        var tx = $"tx-{worker}-{n}";
                        var half = await client.Post("/v1/topics/orders/half-messages", new { producerGroup = "p", transactionId = tx, body = new { worker, n } });
                        if (half.Status != HttpStatusCode.Created) continue;
                        var commit = await client.Post($"/v1/transactions/{tx}/commit");
                        if (commit.Status == HttpStatusCode.OK) acknowledged.TryAdd(commit.Json.Str("messageId"), 0);
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException or Xunit.Sdk.XunitException)
                    {
                        // The node died under this request: its outcome is unknown, and nothing was acknowledged.
                    }
                }
            }

            async Task Consume(int node)
            {
                // Done only once the producers are: a request in flight when producing stopped may still be acknowledged.
                while (!consuming.IsCancellationRequested && !(Volatile.Read(ref produced) && acknowledged.Keys.All(received.ContainsKey)))
                {
                    if (Alive(node) is not { } client || Alive(node + 1) is not { } acker)
                    {
                        await Task.Delay(100);
                        continue;
                    }
                    try
                    {
                        var answer = await client.Post("/v1/consumer-groups/g/topics/orders/receive", new { maxMessages = 16, waitSeconds = 1, invisibleSeconds = 2 });
                        if (answer.Status != HttpStatusCode.OK) continue;
                        var messages = answer.Json["messages"]!.AsArray();
                        if (messages.Count == 0) continue;
                        foreach (var m in messages) received.TryAdd(m.Str("messageId"), 0);
                        // Acked on another node; an ack lost with its node leaves the delivery to come back after its lease.
                        await acker.Ack("g", [.. messages.Select(m => m.Str("receiptHandle"))]);
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                    {
                        // A node died: what it leased comes back when the lease runs out.
                    }
                }
            }

            var producers = new List<Task> { Produce(0), Produce(1) };
            var consumers = new List<Task> { Consume(0), Consume(1), Consume(2) };
            await Eventually.Until(() => acknowledged.Count >= 100, "load under way", TimeSpan.FromSeconds(60));

            nodes[1]!.Kill();
            await Eventually.Until(() => acknowledged.Count >= 200, "load going on with two nodes", TimeSpan.FromSeconds(60));
            nodes[1] = await BrokerProcess.Start(Data(), settings);
            started.Add(nodes[1]!);
            await Eventually.Until(() => acknowledged.Count >= 300, "load going on with the restarted node", TimeSpan.FromSeconds(60));
            nodes[2]!.Kill();
            await Eventually.Until(() => acknowledged.Count >= 400, "load going on after the second kill", TimeSpan.FromSeconds(60));
            await producing.CancelAsync();
            await Task.WhenAll(producers);
            Volatile.Write(ref produced, true);
            consuming.CancelAfter(TimeSpan.FromSeconds(60));
            await Task.WhenAll(consumers);
            var missing = acknowledged.Keys.Where(id => !received.ContainsKey(id)).ToList();
            var rows = new List<string>();
            await using (var db = new Npgsql.NpgsqlConnection(database))
            {
                await db.OpenAsync();
                if (missing.Count > 0)
                {
                    await using var locks = new Npgsql.NpgsqlCommand(
                        "SELECT string_agg(a.pid || ' ' || coalesce(a.application_name, '') || ' ' || coalesce(a.state, '') || ' xact ' || coalesce(a.xact_start::text, '-') || ' ' || left(coalesce(a.query, ''), 120), ' | ') FROM pg_stat_activity a WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()", db);
                    rows.Add($"sessions: {await locks.ExecuteScalarAsync()}");
                    await using var tryLock = new Npgsql.NpgsqlCommand(
                        $"SELECT count(*) FROM (SELECT 1 FROM halfmsg_deliveries WHERE message_id = '{missing[0]}' FOR UPDATE SKIP LOCKED) x", db);
                    rows.Add($"first missing row lockable now: {await tryLock.ExecuteScalarAsync()}");
                    await using var sub = new Npgsql.NpgsqlCommand($"SELECT consumer_group || '/' || topic || '/' || coalesce(ordering_key, '-') FROM halfmsg_deliveries WHERE message_id = '{missing[0]}'", db);
                    rows.Add($"row of: {await sub.ExecuteScalarAsync()}");
                }
                foreach (var id in missing.Take(3))
                {
                    await using var q = new Npgsql.NpgsqlCommand(
                        $"SELECT coalesce((SELECT visible_at || '/' || nonce || '/' || attempts FROM halfmsg_deliveries WHERE message_id = '{id}'), 'no row') || ' now ' || (extract(epoch from clock_timestamp()) * 1000)::bigint", db);
                    rows.Add($"{id}: {await q.ExecuteScalarAsync()}");
                }
            }
            var logs = started.Concat(nodes.OfType<BrokerProcess>()).SelectMany(n => n.OutputLines.Concat(n.ErrorLines)).Where(l => !l.Contains("info:", StringComparison.Ordinal)).Take(20);
            Assert.True(missing.Count == 0, $"{missing.Count} of {acknowledged.Count} acknowledged messages never received: {string.Join("; ", rows)}\n{string.Join('\n', logs)}");
        }
        finally
        {
            foreach (var node in started.Concat(nodes.OfType<BrokerProcess>()).Distinct()) await node.DisposeAsync();
        }
    }
}
