using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace HalfMsgBroker.Bench;

/// <summary>
/// Cross-node commit → receive latency with two brokers on one PostgreSQL database (<c>MultiActive</c>):
/// producers send a half message and commit it on node 1 at a steady rate, consumers long-poll node 2 and ack there.
/// A message's latency runs from just before its commit request to the receive that hands it out on node 2, so
/// node 2 must hear of it through <c>LISTEN/NOTIFY</c> (its safety poll is set to 30 s). Prints p50/p90/p99/max.
/// <c>dotnet HalfMsgBroker.Bench.dll --multi-active-latency --broker-dll … [--rate 1000] [--measure-seconds 20] [--warmup-seconds 5] [--consumers 4] [--pg-statements 15]</c>
/// </summary>
internal static class MultiActiveLatency
{
    public static async Task<int> RunAsync(Settings s, Action<string> log)
    {
        var rate = s.Rate > 0 ? s.Rate : 1000;
        var warmup = s.Warmup;
        var measure = s.Measure;
        var folder = s.PgFolder ?? Path.Combine(Path.GetTempPath(), "halfmsg-bench-pg-" + Guid.NewGuid().ToString("N")[..8]);
        await using var postgres = await PostgresServer.StartAsync(folder, log, trackStatements: s.PgStatements > 0);
        var (database, connectionString) = await postgres.CreateDatabaseAsync("multi", 0);
        string[] args = ["--Broker:Storage:PostgreSql:MultiActive=true", "--Broker:Storage:PostgreSql:DeliverySafetyPoll=00:00:30", "--Logging:LogLevel:Default=Warning"];

        await using var node1 = await BrokerHost.StartOnDatabaseAsync(s, "node1", connectionString, args);
        using var producer = new HttpClient { BaseAddress = node1.BaseUri, Timeout = TimeSpan.FromSeconds(30) };
        (await producer.PutAsJsonAsync("v1/consumer-groups/g/subscriptions/orders", new { })).EnsureSuccessStatusCode();
        await using var node2 = await BrokerHost.StartOnDatabaseAsync(s, "node2", connectionString, args);
        using var consumer = new HttpClient { BaseAddress = node2.BaseUri, Timeout = TimeSpan.FromSeconds(30) };
        log($"two brokers on one database: node 1 pid {node1.Pid}, node 2 pid {node2.Pid}; {rate} commits/s for {warmup.TotalSeconds:F0} + {measure.TotalSeconds:F0} s");
        await Task.Delay(TimeSpan.FromSeconds(3)); // the LISTEN connections are up

        var committing = new ConcurrentDictionary<string, long>();
        var latencies = new ConcurrentBag<double>();
        var commits = new ConcurrentBag<double>();
        var clock = Stopwatch.StartNew();
        var measureFrom = warmup;
        var end = warmup + measure;
        using var stop = new CancellationTokenSource();
        var sent = 0;

        async Task Produce(int worker, int workers)
        {
            // Each worker owns every workers-th slot of the schedule, so together they commit at the rate.
            for (long n = worker; ; n += workers)
            {
                var due = TimeSpan.FromSeconds((double)n / rate);
                if (due >= end) return;
                var wait = due - clock.Elapsed;
                if (wait > TimeSpan.Zero) await Task.Delay(wait);
                var tx = $"tx-{n}";
                (await producer.PostAsJsonAsync("v1/topics/orders/half-messages", new { producerGroup = "p", transactionId = tx, body = new { tx } })).EnsureSuccessStatusCode();
                var started = Stopwatch.GetTimestamp();
                committing[tx] = started;
                (await producer.PostAsJsonAsync($"v1/transactions/{tx}/commit", new { })).EnsureSuccessStatusCode();
                if (clock.Elapsed >= measureFrom) commits.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                Interlocked.Increment(ref sent);
            }
        }

        async Task Consume()
        {
            while (!stop.IsCancellationRequested)
            {
                using var answer = await consumer.PostAsJsonAsync("v1/consumer-groups/g/topics/orders/receive", new { maxMessages = 32, waitSeconds = 1, invisibleSeconds = 30 });
                var at = Stopwatch.GetTimestamp();
                var messages = (await answer.Content.ReadFromJsonAsync<JsonObject>())!["messages"]!.AsArray();
                if (messages.Count == 0) continue;
                foreach (var m in messages)
                {
                    var tx = m!["body"]!["tx"]!.GetValue<string>();
                    if (clock.Elapsed >= measureFrom && committing.TryRemove(tx, out var started)) latencies.Add(Stopwatch.GetElapsedTime(started, at).TotalMilliseconds);
                    else committing.TryRemove(tx, out _);
                }
                (await consumer.PostAsJsonAsync("v1/consumer-groups/g/ack", new { receiptHandles = messages.Select(m => m!["receiptHandle"]!.GetValue<string>()).ToArray() })).EnsureSuccessStatusCode();
            }
        }

        // From the end of the warm-up: the CPU each process spends, and (--pg-statements N) what PostgreSQL spends it on.
        var measured = Task.Run(async () =>
        {
            await Task.Delay(measureFrom);
            if (s.PgStatements > 0) await postgres.ResetStatementsAsync(database);
            return (Node1: Proc.CpuSeconds(node1.Pid), Node2: Proc.CpuSeconds(node2.Pid), Pg: postgres.CpuSeconds(), Sent: Volatile.Read(ref sent));
        });
        var consumers = Enumerable.Range(0, Math.Max(1, s.Consumers)).Select(_ => Task.Run(Consume)).ToList();
        var producers = Enumerable.Range(0, 32).Select(w => Task.Run(() => Produce(w, 32))).ToList();
        await Task.WhenAll(producers);
        var producing = clock.Elapsed;
        var before = await measured;
        var perThousand = (Volatile.Read(ref sent) - before.Sent) / 1000.0;
        var cpu = $"CPU s per 1,000 messages while measured: node 1 {(Proc.CpuSeconds(node1.Pid) - before.Node1) / perThousand:F2}, "
            + $"node 2 {(Proc.CpuSeconds(node2.Pid) - before.Node2) / perThousand:F2}, PostgreSQL {(postgres.CpuSeconds() - before.Pg) / perThousand:F2}";
        var statements = s.PgStatements > 0 ? await postgres.TopStatementsAsync(database, s.PgStatements) : null;
        await Task.Delay(TimeSpan.FromSeconds(2));
        await stop.CancelAsync();
        await Task.WhenAll(consumers);

        var achieved = sent / producing.TotalSeconds;
        Console.WriteLine($"| measured | commits/s asked | achieved | count | p50 ms | p90 ms | p99 ms | max ms |");
        Console.WriteLine($"|---|---|---|---|---|---|---|---|");
        Console.WriteLine(Line("commit on 1 → receive on 2", latencies));
        Console.WriteLine(Line("the commit request alone (node 1)", commits));
        Console.WriteLine();
        Console.WriteLine(cpu);
        if (statements != null) Console.WriteLine($"\nPostgreSQL's time by statement while measured (pg_stat_statements):\n\n{statements}");
        string Line(string what, IEnumerable<double> values)
        {
            var sorted = values.Order().ToArray();
            string P(double q) => sorted.Length == 0 ? "-" : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))].ToString("F1", CultureInfo.InvariantCulture);
            return $"| {what} | {rate} | {achieved:F0} | {sorted.Length} | {P(0.50)} | {P(0.90)} | {P(0.99)} | {P(1)} |";
        }
        await node2.StopAsync();
        await node1.StopAsync();
        return 0;
    }
}
