using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace HalfMsgBroker.Bench;

/// <summary>Workloads 1–5 against HalfMsgBroker. Every workload gets a broker process of its own on a
/// fresh data path (with <paramref name="postgres"/>: on a fresh database of that cluster), so no
/// workload measures what an earlier one left behind.</summary>
internal sealed class BrokerWorkloads(Settings s, Action<string> log, PostgresServer? postgres = null)
{
    private const string System = "HalfMsgBroker";
    private const string ProducerGroup = "bench-producers";
    private const string ConsumerGroup = "bench-consumers";
    private readonly string _run = DateTime.UtcNow.ToString("HHmmss", CultureInfo.InvariantCulture);

    /// <summary>Plain-send throughput of the default mode, used to plan workload 4's due time.</summary>
    public double PlainSendRate { get; private set; }

    private static async Task Pause(TimeSpan t) => await Task.Delay(t);

    private sealed class Window
    {
        public CpuDelta Cpu;
        public double RssMiB;
        public string WarmupNote = "";
    }

    /// <summary>Warm up, then measure for the configured time with the recorders on. A broker process
    /// that has just started (cold) warms up in 5 s slices until its CPU per message settles (two
    /// slices within 20 %), at least <see cref="Settings.Warmup"/> and at most <see cref="Settings.MaxWarmup"/>;
    /// a warm one gets the short warm-up.</summary>
    private Task<Window> MeasureAsync(int pid, bool cold, Func<long> progress, params Recorder[] recorders) =>
        MeasureAsync([pid], cold, progress, recorders);

    /// <summary>As above for several broker nodes: their CPU is summed, and so is their RSS.</summary>
    private async Task<Window> MeasureAsync(IReadOnlyList<int> pids, bool cold, Func<long> progress, params Recorder[] recorders)
    {
        var note = "";
        if (cold)
        {
            var start = Stopwatch.GetTimestamp();
            double prev = double.NaN, first = double.NaN;
            while (true)
            {
                var c0 = pids.Sum(Proc.CpuSeconds);
                var n0 = progress();
                await Pause(TimeSpan.FromSeconds(5));
                var c1 = pids.Sum(Proc.CpuSeconds);
                var n1 = progress();
                var per1k = n1 > n0 ? (c1 - c0) / ((n1 - n0) / 1000.0) : double.NaN;
                if (double.IsNaN(first)) first = per1k;
                var elapsed = Stopwatch.GetElapsedTime(start);
                var settled = !double.IsNaN(prev) && !double.IsNaN(per1k) && Math.Abs(per1k - prev) <= 0.2 * prev;
                if (elapsed >= s.MaxWarmup || (elapsed >= s.Warmup && settled))
                {
                    note = string.Create(CultureInfo.InvariantCulture,
                        $"cold start: warm-up {elapsed.TotalSeconds:F0} s, CPU s/1k in its first 5 s {first:F2}, last 5 s {per1k:F2}{(settled ? "" : " (not settled)")}; ");
                    break;
                }
                prev = per1k;
            }
        }
        else
        {
            await Pause(s.ShortWarmup);
        }
        var a = CpuSnapshot.Take(pids, postgres);
        foreach (var r in recorders) r.Recording = true;
        await Pause(s.Measure);
        foreach (var r in recorders) r.Recording = false;
        var b = CpuSnapshot.Take(pids, postgres);
        return new Window { Cpu = CpuDelta.Between(a, b), RssMiB = pids.Sum(p => Proc.RssMiB(p)), WarmupNote = note };
    }

    private static string Transport(bool http1) => http1 ? "HTTP/1.1, a connection per worker" : "h2c, one multiplexed connection";

    private string Noise(CpuDelta c) =>
        string.Create(CultureInfo.InvariantCulture, $"gen CPU {c.SelfSeconds:F1}s, {(postgres is null ? "" : $"PostgreSQL CPU {c.DatabaseSeconds:F1}s, ")}others {c.OtherCores:F2} cores");

    /// <summary>PostgreSQL's CPU per 1,000 messages (NaN without it), and a note with broker + PostgreSQL.</summary>
    private (double PerThousand, string Note) DatabaseCpu(CpuDelta c, long messages)
    {
        if (postgres is null || messages <= 0) return (double.NaN, "");
        var db = c.DatabaseSeconds / (messages / 1000.0);
        var both = (c.TargetSeconds + c.DatabaseSeconds) / (messages / 1000.0);
        return (db, string.Create(CultureInfo.InvariantCulture, $"broker + PostgreSQL CPU {both:F3} s/1k; "));
    }

    private BrokerStorage StorageFor() => postgres is null ? BrokerStorage.LiteDb : new BrokerStorage(postgres, s.PgMaxPoolSize);

    private async Task ProducerLoopAsync(BrokerClient client, string topic, bool transactional, bool oneWayEnd, Tracker tracker,
        Recorder send, Func<bool> stop, CancellationToken hard)
    {
        var part = send.NewPart();
        var pacer = new Pacer(s);
        // With oneWayEnd, the commit still in flight: its answer is read once the next half message is stored.
        Task<HttpStatusCode>? pendingEnd = null;
        while (!stop() && !hard.IsCancellationRequested)
        {
            await pacer.WaitTurnAsync(hard);
            var k = tracker.Next();
            if (k < 0) break;
            try
            {
                var t0 = Stopwatch.GetTimestamp();
                if (transactional)
                {
                    var tx = $"b{_run}-{topic}-{k}";
                    var h = await client.SendHalfAsync(topic, ProducerGroup, tx, k, null, hard);
                    if (pendingEnd is not null)
                    {
                        var ended = await pendingEnd;
                        pendingEnd = null;
                        if (ended != HttpStatusCode.OK) send.Error();
                    }
                    if (h != HttpStatusCode.Created && h != HttpStatusCode.OK) { send.Error(); await Task.Delay(20, hard); continue; }
                    var tc = Stopwatch.GetTimestamp();
                    tracker.Release(k, tc); // latency runs from "commit sent"
                    if (oneWayEnd)
                    {
                        pendingEnd = client.CommitAsync(tx, hard);
                    }
                    else
                    {
                        var c = await client.CommitAsync(tx, hard);
                        if (c != HttpStatusCode.OK) { send.Error(); await Task.Delay(20, hard); continue; }
                    }
                }
                else
                {
                    var c = await client.SendPlainAsync(topic, k, hard);
                    if (c != HttpStatusCode.Created) { send.Error(); await Task.Delay(20, hard); continue; }
                    tracker.MarkReleased(k);
                }
                send.Complete(part, t0, Stopwatch.GetTimestamp());
            }
            catch (OperationCanceledException) when (hard.IsCancellationRequested)
            {
                break;
            }
            catch (HttpRequestException)
            {
                pendingEnd = null;
                send.Error();
                await Task.Delay(50, CancellationToken.None);
            }
        }
        if (pendingEnd is not null)
        {
            try
            {
                if (await pendingEnd != HttpStatusCode.OK) send.Error();
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
            {
                send.Error();
            }
        }
    }

    private long _receiveCalls;
    private long _receivedInCalls;
    private long _ackCalls;

    private async Task ConsumerLoopAsync(BrokerClient client, string group, string topic, int batch, Tracker tracker,
        Recorder e2e, Func<bool> stop, CancellationToken hard)
    {
        var part = e2e.NewPart();
        while (!stop() && !hard.IsCancellationRequested)
        {
            try
            {
                var (status, msgs) = await client.ReceiveAsync(group, topic, batch, 2, hard);
                var now = Stopwatch.GetTimestamp();
                if (status != HttpStatusCode.OK) { e2e.Error(); await Task.Delay(50, hard); continue; }
                if (e2e.Recording)
                {
                    Interlocked.Increment(ref _receiveCalls);
                    Interlocked.Add(ref _receivedInCalls, msgs.Count);
                    if (msgs.Count > 0) Interlocked.Increment(ref _ackCalls);
                }
                if (msgs.Count == 0) continue;
                foreach (var (k, _) in msgs)
                {
                    var t0 = tracker.Receive(k, out var first);
                    if (first) e2e.Complete(part, t0, now);
                }
                var a = await client.AckAsync(group, msgs.Select(m => m.Handle), hard);
                if (a != HttpStatusCode.OK) e2e.Error();
            }
            catch (OperationCanceledException) when (hard.IsCancellationRequested)
            {
                break;
            }
            catch (HttpRequestException)
            {
                e2e.Error();
                await Task.Delay(50, CancellationToken.None);
            }
        }
    }

    private static async Task SetUpAsync(BrokerClient client, string topic, string? pushUrl = null, string? checkUrl = null, string group = ConsumerGroup)
    {
        if (checkUrl is not null)
        {
            await client.PutJsonAsync($"v1/producer-groups/{ProducerGroup}", $"{{\"checkUrl\":\"{checkUrl}\",\"checkTimeoutMs\":3000}}");
        }
        else
        {
            try
            {
                await client.PutJsonAsync($"v1/producer-groups/{ProducerGroup}", "{}");
            }
            catch (InvalidOperationException)
            {
                // A producer group without a checkUrl may not need registering.
            }
        }
        var push = pushUrl is null ? "" : $",\"push\":{{\"url\":\"{pushUrl}\",\"timeoutMs\":5000}}";
        await client.PutJsonAsync($"v1/consumer-groups/{group}/subscriptions/{topic}", $"{{\"tagFilter\":\"*\"{push}}}");
    }

    /// <summary>Workload 1 (pull consumers) and 3 (push to the in-process receiver): half → commit by P
    /// producers, latency from commit sent to message received.</summary>
    /// <param name="batch">N ≥ 2: the producers use the batch endpoints, N messages per request.</param>
    /// <param name="oneWayEnd">Producers do not wait for a commit's answer before their next half message (<see cref="Settings.OneWayEnd"/>).</param>
    public Task<Row> EndToEndAsync(BrokerHost broker, bool cold, string mode, bool push, bool http1, int batch = 0, bool oneWayEnd = false) =>
        EndToEndAsync([broker], cold, mode, push, http1, batch, oneWayEnd);

    /// <param name="nodes">Several brokers on one database: producer i sends to node i mod N, consumer j receives
    /// (and acks) on node j + 1 mod N, so with N ≥ 2 every consumer reads what producers on other nodes committed.</param>
    private async Task<Row> EndToEndAsync(IReadOnlyList<BrokerHost> nodes, bool cold, string mode, bool push, bool http1, int batch = 0, bool oneWayEnd = false)
    {
        var broker = nodes[0];
        var name = (push ? "3 push e2e" : "1 e2e transactional") + (s.PlainSends ? " (plain sends)" : "") + (oneWayEnd ? " (one-way end)" : "") + (batch > 0 ? $" (batches of {batch})" : "") + (s.Rate > 0 ? $" at {s.Rate}/s offered" : "")
                   + (http1 && !s.Http1 ? " (HTTP/1.1)" : "") + (broker.Keys is not null ? " (API keys)" : "") + (nodes.Count > 1 ? $" ({nodes.Count} nodes)" : "");
        var topic = (push ? "bench-w3" : "bench-w1") + (http1 && !s.Http1 ? "-h1" : "") + (batch > 0 ? $"-b{batch}" : "") + (oneWayEnd ? "-ow" : "");
        log($"workload {name} [{mode}]");
        var clients = nodes.Select(n => new BrokerClient(n.UriFor(http1), s.PayloadBytes, http1, n.Keys)).ToArray();
        using var disposeClients = new ClientsDisposer(clients);
        var client = clients[0];
        var tracker = new Tracker(s.MaxMessagesPerWorkload);
        var e2e = new Recorder();
        var send = new Recorder();
        LocalServer? receiver = null;
        try
        {
            if (push)
            {
                var part = e2e.NewPart();
                receiver = await LocalServer.StartAsync(app => app.MapPost("/push", async (HttpRequest req) =>
                {
                    var bytes = await LocalServer.ReadBodyAsync(req);
                    var now = Stopwatch.GetTimestamp();
                    long k = -1;
                    try
                    {
                        using var doc = JsonDocument.Parse(bytes);
                        if (doc.RootElement.TryGetProperty("body", out var b) && b.TryGetProperty("k", out var kv)) k = kv.GetInt64();
                    }
                    catch (JsonException)
                    {
                    }
                    var t0 = tracker.Receive(k, out var first);
                    if (first) e2e.Complete(part, t0, now);
                    return Results.Ok();
                }));
            }
            try
            {
                await SetUpAsync(client, topic, push ? new Uri(receiver!.BaseUri, "push").ToString() : null, group: push ? "bench-push" : ConsumerGroup);
            }
            catch (InvalidOperationException e)
            {
                return Row.NotRun(name, System, mode, "setup failed: " + e.Message);
            }

            var stopProducers = false;
            var stopConsumers = false;
            using var hard = new CancellationTokenSource(s.MaxWarmup + s.Measure + s.Drain + TimeSpan.FromSeconds(60));
            var consumers = push ? [] : Enumerable.Range(0, s.Consumers)
                .Select(j => Task.Run(() => ConsumerLoopAsync(clients[(j + 1) % clients.Length], ConsumerGroup, topic, s.BatchSize, tracker, e2e, () => Volatile.Read(ref stopConsumers), hard.Token)))
                .ToArray();
            var producers = Enumerable.Range(0, s.Producers)
                .Select(i => Task.Run(() => batch > 0
                    ? BatchedProducer.RunAsync(clients[i % clients.Length], topic, ProducerGroup, $"b{_run}-{topic}", !s.PlainSends, batch, tracker, send, () => Volatile.Read(ref stopProducers), hard.Token)
                    : ProducerLoopAsync(clients[i % clients.Length], topic, !s.PlainSends, oneWayEnd, tracker, send, () => Volatile.Read(ref stopProducers), hard.Token)))
                .ToArray();
            Interlocked.Exchange(ref _receiveCalls, 0);
            Interlocked.Exchange(ref _receivedInCalls, 0);
            Interlocked.Exchange(ref _ackCalls, 0);
            var w = await MeasureAsync([.. nodes.Select(n => n.Pid)], cold, () => tracker.ReceivedUnique, e2e, send);
            var receiveCalls = Interlocked.Read(ref _receiveCalls);
            var perReceive = receiveCalls == 0 ? 0 : Interlocked.Read(ref _receivedInCalls) / (double)receiveCalls;
            var requestsPerSecond = (send.Count * 2 / Math.Max(1, batch) + (push ? 0 : receiveCalls + Interlocked.Read(ref _ackCalls))) / w.Cpu.WallSeconds;
            Volatile.Write(ref stopProducers, true);
            await Task.WhenAll(producers);
            var drained = await tracker.WaitAllReceivedAsync(s.Drain);
            Volatile.Write(ref stopConsumers, true);
            await Task.WhenAll(consumers);

            var h = e2e.Merged();
            var sh = send.Merged();
            var rate = e2e.Count / w.Cpu.WallSeconds;
            var notes = string.Create(CultureInfo.InvariantCulture,
                $"{w.WarmupNote}{(nodes.Count > 1 ? $"{nodes.Count} brokers on one database, all active: producers and consumers spread over them; CPU and RSS summed over the brokers; " : "")}{Transport(http1)}; {(batch > 0 ? $"{batch} messages per half and per commit request; " : "")}{(oneWayEnd ? "half (commit one-way)" : "half+commit")} p50 {sh.Ms(50):F1} / p99 {sh.Ms(99):F1} ms; {(push ? "" : $"{perReceive:F1} msgs per receive, ")}≈{requestsPerSecond:F0} req/s; committed {tracker.Released}, received {tracker.ReceivedUnique}"
                + $"{(drained ? "" : $" (NOT all received within {s.Drain.TotalSeconds:F0} s drain)")}, dup {tracker.Duplicates}, errors {send.Errors + e2e.Errors}; {Noise(w.Cpu)}");
            var (dbCpu, dbNote) = DatabaseCpu(w.Cpu, e2e.Count);
            return new Row(name, System, mode, e2e.Count, rate, h.Ms(50), h.Ms(99), h.MaxMs(),
                e2e.Count > 0 ? w.Cpu.TargetSeconds / (e2e.Count / 1000.0) : double.NaN, w.RssMiB, dbNote + notes) { DbCpuSecondsPer1k = dbCpu };
        }
        finally
        {
            if (receiver is not null) await receiver.DisposeAsync();
        }
    }

    /// <summary>Workloads 1, 2 and (default mode) 3 on one broker process per durability mode: only
    /// the first row pays the cold start; the later ones run on the warm process, on their own topics.</summary>
    public async Task<List<Row>> RunModeAsync(string mode, IReadOnlySet<int> workloads)
    {
        var rows = new List<Row>();
        await using var broker = await BrokerHost.StartAsync(s, "w123-" + mode.ToLowerInvariant() + (postgres is null ? "" : "-pg"), mode, StorageFor());
        var cold = true;
        async Task Add(string workload, Func<Task<Row>> f)
        {
            try
            {
                rows.Add(await f());
            }
            catch (Exception e)
            {
                log($"  {workload} [{mode}] failed: {e}");
                rows.Add(Row.NotRun(workload, System, mode, "failed: " + e.GetType().Name + ": " + e.Message.ReplaceLineEndings(" ")));
            }
            cold = false;
        }
        if (workloads.Contains(1)) await Add("1 e2e transactional", () => EndToEndAsync(broker, cold, mode, push: false, s.Http1));
        // The full run also shows workload 1 over HTTP/1.1, for clients that cannot speak h2c.
        if (workloads.Contains(1) && mode == "Process" && !s.Quick && !s.Http1)
        {
            await Add("1 e2e transactional (HTTP/1.1)", () => EndToEndAsync(broker, cold, mode, push: false, http1: true));
        }
        // Visibility changes what consumers wait for, not what a producer waits for: workload 2 has no consumers.
        var sends = workloads.Contains(2) && mode != BrokerHost.VisibleMode;
        if (sends) await Add("2 plain sends", () => PlainSendsAsync(broker, cold, mode));
        if (workloads.Contains(3) && mode == "Process") await Add("3 push e2e", () => EndToEndAsync(broker, cold, mode, push: true, s.Http1));
        // The batch endpoints as rows of their own, after (never instead of) the single-message rows.
        if (s.BatchSends > 1 && workloads.Contains(1))
        {
            await Add($"1 e2e transactional (batches of {s.BatchSends})", () => EndToEndAsync(broker, cold, mode, push: false, s.Http1, s.BatchSends));
        }
        // RocketMQ's producer shape beside the headline, at equal durability only (see Settings.OneWayEnd).
        if (s.OneWayEnd && mode is "Fsync" or BrokerHost.VisibleMode && !s.PlainSends && workloads.Contains(1))
        {
            await Add("1 e2e transactional (one-way end)", () => EndToEndAsync(broker, cold, mode, push: false, s.Http1, oneWayEnd: true));
        }
        if (s.BatchSends > 1 && sends) await Add($"2 plain sends (batches of {s.BatchSends})", () => PlainSendsAsync(broker, cold, mode, s.BatchSends));
        return rows;
    }

    /// <summary>
    /// Workload 1 on <paramref name="nodes"/> broker processes sharing one fresh PostgreSQL database (all active), at
    /// the load the settings give (full, or <c>--rate</c>): what several nodes cost per message (broker CPU summed over
    /// the nodes, and PostgreSQL's) and the cross-node commit → receive latency. Fresh brokers each time, as the
    /// light-load rows get: the workload's transaction ids start again at 0.
    /// </summary>
    public async Task<List<Row>> RunNodesAsync(int nodes)
    {
        var hosts = await BrokerHost.StartNodesAsync(s, $"w1-pg-x{nodes}{(s.Rate > 0 ? "-light" : "")}", StorageFor(), nodes);
        try
        {
            return [await EndToEndAsync(hosts, cold: true, "Fsync", push: false, s.Http1)];
        }
        finally
        {
            foreach (var host in hosts) await host.DisposeAsync();
        }
    }

    /// <summary>Disposes a workload's clients, one per node.</summary>
    private sealed class ClientsDisposer(BrokerClient[] clients) : IDisposable
    {
        public void Dispose()
        {
            foreach (var c in clients) c.Dispose();
        }
    }

    /// <summary>Workload 2: plain sends only (with one pull subscription that nobody drains).</summary>
    public async Task<Row> PlainSendsAsync(BrokerHost broker, bool cold, string mode, int batch = 0)
    {
        var name = "2 plain sends" + (batch > 0 ? $" (batches of {batch})" : "");
        log($"workload {name} [{mode}]");
        var topic = "bench-w2" + (batch > 0 ? $"-b{batch}" : "");
        using var client = new BrokerClient(broker.UriFor(s.Http1), s.PayloadBytes, s.Http1, broker.Keys);
        try
        {
            await SetUpAsync(client, topic);
        }
        catch (InvalidOperationException e)
        {
            return Row.NotRun(name, System, mode, "setup failed: " + e.Message);
        }
        var tracker = new Tracker(s.MaxMessagesPerWorkload);
        var send = new Recorder();
        var stop = false;
        using var hard = new CancellationTokenSource(s.MaxWarmup + s.Measure + TimeSpan.FromSeconds(60));
        var producers = Enumerable.Range(0, s.Producers)
            .Select(_ => Task.Run(() => batch > 0
                ? BatchedProducer.RunAsync(client, topic, ProducerGroup, "", false, batch, tracker, send, () => Volatile.Read(ref stop), hard.Token)
                : ProducerLoopAsync(client, topic, false, false, tracker, send, () => Volatile.Read(ref stop), hard.Token)))
            .ToArray();
        var w = await MeasureAsync(broker.Pid, cold, () => tracker.Released, send);
        Volatile.Write(ref stop, true);
        await Task.WhenAll(producers);
        var h = send.Merged();
        var rate = send.Count / w.Cpu.WallSeconds;
        if (mode == "Process" && batch == 0) PlainSendRate = rate;
        var latency = batch > 0 ? $"{batch} messages per request; latency = the message's batch send → 200" : "latency = send → 201";
        var notes = string.Create(CultureInfo.InvariantCulture, $"{w.WarmupNote}{Transport(s.Http1)}; {latency}; errors {send.Errors}; {Noise(w.Cpu)}");
        var (dbCpu, dbNote) = DatabaseCpu(w.Cpu, send.Count);
        return new Row(name, System, mode, send.Count, rate, h.Ms(50), h.Ms(99), h.MaxMs(),
            send.Count > 0 ? w.Cpu.TargetSeconds / (send.Count / 1000.0) : double.NaN, w.RssMiB, dbNote + notes) { DbCpuSecondsPer1k = dbCpu };
    }

    /// <summary>Workload 4: N prepared messages not yet due (idle CPU), then all due at once against a
    /// checker that answers commit — checks/s. The due instant is shared by giving each half message
    /// the checkImmunitySeconds that ends at the same moment.</summary>
    public async Task<List<Row>> CheckBackAsync()
    {
        const string name = "4 check-back";
        // On PostgreSQL the durability mode changes nothing (every commit waits for the WAL flush): Fsync.
        var mode = postgres is null ? "Process" : "Fsync";
        log($"workload {name} [{mode}], {s.CheckBackCount} prepared");
        var rows = new List<Row>();
        const string topic = "bench-w4";
        var tracker = new Tracker(s.CheckBackCount);
        var checks = new Recorder();
        long dueAt = 0;
        long checkCalls = 0, firstCheck = 0, lastCheck = 0;
        var part = checks.NewPart();
        checks.Recording = true;
        await using var checker = await LocalServer.StartAsync(app => app.MapPost("/check", async (HttpRequest req) =>
        {
            var bytes = await LocalServer.ReadBodyAsync(req);
            var now = Stopwatch.GetTimestamp();
            Interlocked.Increment(ref checkCalls);
            Interlocked.CompareExchange(ref firstCheck, now, 0);
            Volatile.Write(ref lastCheck, now);
            try
            {
                using var doc = JsonDocument.Parse(bytes);
                var tx = doc.RootElement.GetProperty("transactionId").GetString() ?? "";
                var k = long.Parse(tx[(tx.LastIndexOf('-') + 1)..], CultureInfo.InvariantCulture);
                tracker.Receive(k, out var first);
                if (first) checks.Complete(part, Volatile.Read(ref dueAt), now);
            }
            catch (Exception e) when (e is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
            {
            }
            return Results.Json(new CheckAnswer("commit"), CheckAnswerContext.Default.CheckAnswer);
        }));
        await using var broker = await BrokerHost.StartAsync(s, postgres is null ? "w4" : "w4-pg", mode, StorageFor());
        using var client = new BrokerClient(broker.UriFor(s.Http1), s.PayloadBytes, s.Http1, broker.Keys);
        try
        {
            await SetUpAsync(client, topic, checkUrl: new Uri(checker.BaseUri, "check").ToString());
        }
        catch (InvalidOperationException e)
        {
            rows.Add(Row.NotRun(name, System, mode, "setup failed: " + e.Message));
            return rows;
        }

        // Plan the shared due instant from the half-send rate of a short probe (probe messages are due
        // only in an hour, so they stay prepared through the whole workload and are not counted).
        var probeCount = Math.Clamp(s.CheckBackCount / 20, 100, 2000);
        var probeStart = Stopwatch.GetTimestamp();
        long probeNext = -1;
        using (var probeCts = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
        {
            await Task.WhenAll(Enumerable.Range(0, s.Producers).Select(_ => Task.Run(async () =>
            {
                long i;
                while ((i = Interlocked.Increment(ref probeNext)) < probeCount && !probeCts.IsCancellationRequested)
                {
                    try
                    {
                        await client.SendHalfAsync(topic, ProducerGroup, $"probe{_run}-{i}", -1, 3600, probeCts.Token);
                    }
                    catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
                    {
                    }
                }
            })));
        }
        var probeRate = Math.Min(probeNext, probeCount) / Stopwatch.GetElapsedTime(probeStart).TotalSeconds;
        var rate = probeRate > 0 ? probeRate : PlainSendRate > 0 ? PlainSendRate / 2 : 500;
        var planned = TimeSpan.FromSeconds(Math.Min(s.CheckSendBudget.TotalSeconds, s.CheckBackCount / rate * 1.3 + 2));
        var start = Stopwatch.GetTimestamp();
        var due = start + (long)((planned + s.CheckIdleWindow + TimeSpan.FromSeconds(2)).TotalSeconds * Stopwatch.Frequency);
        Volatile.Write(ref dueAt, due);
        var sendBudgetEnd = start + (long)(s.CheckSendBudget.TotalSeconds * Stopwatch.Frequency);
        long sent = 0, errors = 0;
        using var hard = new CancellationTokenSource(s.CheckSendBudget + TimeSpan.FromSeconds(30));
        var producers = Enumerable.Range(0, s.Producers).Select(_ => Task.Run(async () =>
        {
            while (Stopwatch.GetTimestamp() < sendBudgetEnd && !hard.IsCancellationRequested)
            {
                var k = tracker.Next();
                if (k < 0) break;
                var left = (due - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency;
                var immunity = Math.Max(1, (int)Math.Ceiling(left));
                try
                {
                    var st = await client.SendHalfAsync(topic, ProducerGroup, $"c{_run}-{k}", k, immunity, hard.Token);
                    if (st is HttpStatusCode.Created or HttpStatusCode.OK) Interlocked.Increment(ref sent);
                    else Interlocked.Increment(ref errors);
                }
                catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        })).ToArray();
        await Task.WhenAll(producers);
        var sendSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var preparedRss = Proc.RssMiB(broker.Pid);

        // Idle: everything prepared, nothing due yet.
        await Task.Delay(1000);
        var idleLeft = (due - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency - 1;
        string idleNote;
        if (idleLeft >= 1 && Interlocked.Read(ref checkCalls) == 0)
        {
            var a = CpuSnapshot.Take(broker.Pid, postgres);
            await Task.Delay(TimeSpan.FromSeconds(Math.Min(idleLeft, s.CheckIdleWindow.TotalSeconds)));
            var b = CpuSnapshot.Take(broker.Pid, postgres);
            var d = CpuDelta.Between(a, b);
            idleNote = string.Create(CultureInfo.InvariantCulture,
                $"idle with {sent} prepared not due: broker {d.TargetSeconds / d.WallSeconds * 100:F1}% of a core{(postgres is null ? "" : $", PostgreSQL {d.DatabaseSeconds / d.WallSeconds * 100:F1}%")} over {d.WallSeconds:F1} s");
        }
        else
        {
            idleNote = string.Create(CultureInfo.InvariantCulture,
                $"idle window missed (sending took {sendSeconds:F1} s; {checkCalls} checks already)");
        }
        rows.Add(new Row(name + " (idle)", System, mode, sent, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, Proc.RssMiB(broker.Pid),
            idleNote + string.Create(CultureInfo.InvariantCulture, $"; sent in {sendSeconds:F1} s ({sent / sendSeconds:F0}/s; probe {probeRate:F0}/s, {probeCount} probe halves due in 1 h also prepared), errors {errors}")));

        // All due: wait for the first check, then for every message to be checked once.
        while (Stopwatch.GetTimestamp() < due) await Task.Delay(100);
        var c0 = CpuSnapshot.Take(broker.Pid, postgres);
        var end = Stopwatch.GetTimestamp() + (long)(s.CheckDrainBudget.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < end && tracker.ReceivedUnique < sent) await Task.Delay(100);
        var c1 = CpuSnapshot.Take(broker.Pid, postgres);
        var cd = CpuDelta.Between(c0, c1);
        var checkedUnique = tracker.ReceivedUnique;
        var last = Volatile.Read(ref lastCheck);
        var spanFromDue = last > due ? (last - due) / (double)Stopwatch.Frequency : double.NaN;
        var perSecond = checkedUnique / spanFromDue;
        var h = checks.Merged();
        var (dbCpu, dbNote) = DatabaseCpu(cd, checkedUnique);
        rows.Add(new Row(name + " (all due)", System, mode, checkedUnique, perSecond, h.Ms(50), h.Ms(99), h.MaxMs(),
            checkedUnique > 0 ? cd.TargetSeconds / (checkedUnique / 1000.0) : double.NaN, Proc.RssMiB(broker.Pid),
            dbNote + string.Create(CultureInfo.InvariantCulture,
                $"checks/s = checked / (last check − due instant); latency = due → check arrives; {checkCalls} check calls for {sent} prepared"
                + $"{(checkedUnique < sent ? $" (only {checkedUnique} checked within {s.CheckDrainBudget.TotalSeconds:F0} s)" : "")}; RSS with all prepared {preparedRss:F0} MiB; {Noise(cd)}")) { DbCpuSecondsPer1k = dbCpu });
        return rows;
    }

    /// <summary>Workload 5: store N messages (one pull subscription, undrained), stop gracefully, start
    /// again on the same data and time /health/ready; RSS at ready and after it settles.</summary>
    public async Task<Row> RestartAsync()
    {
        const string name = "5 restart";
        const string mode = "Process";
        log($"workload {name} [{mode}], loading up to {s.RestartCount} messages");
        const string topic = "bench-w5";
        await using var broker = await BrokerHost.StartAsync(s, "w5", mode);
        using var client = new BrokerClient(broker.UriFor(s.Http1), s.PayloadBytes, s.Http1, broker.Keys);
        try
        {
            await SetUpAsync(client, topic);
        }
        catch (InvalidOperationException e)
        {
            return Row.NotRun(name, System, mode, "setup failed: " + e.Message);
        }
        var tracker = new Tracker(s.RestartCount);
        var send = new Recorder { Recording = true };
        var start = Stopwatch.GetTimestamp();
        var budgetEnd = start + (long)(s.RestartLoadBudget.TotalSeconds * Stopwatch.Frequency);
        using var hard = new CancellationTokenSource(s.RestartLoadBudget + TimeSpan.FromSeconds(30));
        var producers = Enumerable.Range(0, s.Producers * 2)
            .Select(_ => Task.Run(() => ProducerLoopAsync(client, topic, false, false, tracker, send, () => Stopwatch.GetTimestamp() > budgetEnd, hard.Token)))
            .ToArray();
        var lastLog = Stopwatch.GetTimestamp();
        while (!producers.All(p => p.IsCompleted))
        {
            await Task.Delay(500);
            if (Stopwatch.GetElapsedTime(lastLog).TotalSeconds >= 15)
            {
                lastLog = Stopwatch.GetTimestamp();
                log($"  stored {tracker.Released} of {s.RestartCount}");
            }
        }
        await Task.WhenAll(producers);
        var loadSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var stored = tracker.Released;
        var rssBefore = Proc.RssMiB(broker.Pid);
        var stopMs = await broker.StopAsync(TimeSpan.FromSeconds(60));
        var bytes = Proc.DirectoryBytes(broker.DataPath);
        await broker.StartProcessAsync(TimeSpan.FromSeconds(300));
        var rssReady = Proc.RssMiB(broker.Pid);
        // Time to the first message a consumer can receive after ready.
        var t = Stopwatch.GetTimestamp();
        double firstReceiveMs = double.NaN;
        try
        {
            var (status, msgs) = await client.ReceiveAsync(ConsumerGroup, topic, 1, 5, CancellationToken.None);
            if (status == HttpStatusCode.OK && msgs.Count > 0) firstReceiveMs = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
        }
        catch (HttpRequestException)
        {
        }
        await Task.Delay(3000);
        var rssSettled = Proc.RssMiB(broker.Pid);
        var cpuAfter = Proc.CpuSeconds(broker.Pid);
        return new Row(name, System, mode, stored, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, rssSettled,
            string.Create(CultureInfo.InvariantCulture,
                $"**ready in {broker.ReadyMs:F0} ms** (process start → /health/ready 200); first receive {firstReceiveMs:F0} ms after; "
                + $"RSS at ready {rssReady:F0} MiB, +3 s {rssSettled:F0} MiB, before restart {rssBefore:F0} MiB; CPU in first {broker.ReadyMs / 1000 + 3:F0} s {cpuAfter:F1} s; "
                + $"data {bytes / 1048576.0:F0} MiB; loaded at {stored / loadSeconds:F0}/s; graceful stop {stopMs:F0} ms; send errors {send.Errors}"));
    }
}

internal sealed record CheckAnswer(string State);

[System.Text.Json.Serialization.JsonSerializable(typeof(CheckAnswer))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class CheckAnswerContext : System.Text.Json.Serialization.JsonSerializerContext;
