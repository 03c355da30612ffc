using System.Diagnostics;
using System.Globalization;
using System.Text;
using HalfMsgBroker.Bench;

var s = Settings.Parse(args);
if (s.AnalyzeTrace is not null) return TraceSummary.Print(s.AnalyzeTrace);
if (s.StorageFloorBatch > 0) return StorageFloor.Run(s.StorageFloorBatch, s.StorageFloorMessages, s.StorageFloorCheckpoint, s.StorageFloorOps, s.StorageFloorTopicCounts, s.StorageFloorJournal);
Directory.CreateDirectory(s.WorkDir);
var clock = Stopwatch.StartNew();
void Log(string m) => Console.Error.WriteLine($"[{clock.Elapsed:mm\\:ss}] {m}");

ThreadPool.GetMinThreads(out var minWorker, out var minIo);
ThreadPool.SetMinThreads(Math.Max(minWorker, 64), minIo);
if (s.RestartMemory) return await RestartMemory.RunAsync(s, Log);
if (s.MultiActiveLatency) return await MultiActiveLatency.RunAsync(s, Log);

var loadStart = Proc.LoadAverage();
var rows = new List<Row>();
var rabbit = new RabbitWorkloads(s, Log);
var haveBroker = s.ExternalBrokerUrl is not null || (s.BrokerDll is not null && File.Exists(s.BrokerDll));
var haveRabbit = s.RabbitPort > 0;

// The broker rows run once per storage provider asked for (--storage): LiteDB on each broker's data
// path, PostgreSQL on a private cluster started here for the whole run, a fresh database per broker.
await using var postgres = haveBroker && s.Storages.Contains("postgresql") ? await StartPostgresAsync() : null;
var storages = new List<(string Label, BrokerWorkloads Workloads, List<string> Modes)>();
if (s.Storages.Contains("litedb")) storages.Add(("LiteDB", new BrokerWorkloads(s, Log), s.Modes));
// On PostgreSQL a 2xx waits for the commit's WAL flush (synchronous_commit on): the Fsync promise, so
// one row set in that mode, whatever --modes says.
if (postgres is not null) storages.Add(("PostgreSQL", new BrokerWorkloads(s, Log, postgres), ["Fsync"]));
BrokerWorkloads? broker = s.Storages.Contains("litedb") ? storages[0].Workloads : null;

async Task<PostgresServer?> StartPostgresAsync()
{
    var folder = s.PgFolder ?? Path.Combine(Path.GetTempPath(), "halfmsg-bench-pg-" + Guid.NewGuid().ToString("N")[..8]);
    try
    {
        return await PostgresServer.StartAsync(folder, Log);
    }
    catch (Exception e) when (e is InvalidOperationException or IOException or System.ComponentModel.Win32Exception or OperationCanceledException)
    {
        Log($"PostgreSQL could not be started: {e.Message}");
        rows.Add(Row.NotRun("1-3", "HalfMsgBroker", "Fsync", "PostgreSQL could not be started: " + e.Message.ReplaceLineEndings(" ")) with { Storage = "PostgreSQL" });
        return null;
    }
}

async Task Run(string workload, string system, string mode, Func<Task<Row>> f, string storage = "")
{
    try
    {
        var row = await f() with { Storage = storage };
        rows.Add(row);
        Log($"  {row.Workload} / {row.System} / {row.Mode}: {row.PerSecond:F0} msg/s, p50 {row.P50Ms:F1} ms, p99 {row.P99Ms:F1} ms, CPU {row.CpuSecondsPer1k:F3} s/1k");
    }
    catch (Exception e)
    {
        Log($"  {workload} [{system} {mode}] failed: {e}");
        rows.Add(Row.NotRun(workload, system, mode, "failed: " + e.GetType().Name + ": " + e.Message.ReplaceLineEndings(" ")) with { Storage = storage });
    }
}

async Task RunMany(string workload, string system, string mode, Func<Task<List<Row>>> f, string storage)
{
    try
    {
        foreach (var row in await f())
        {
            rows.Add(row with { Storage = storage });
            Log($"  {row.Workload}: {row.Messages} msgs, {row.PerSecond:F0}/s, {row.Notes}");
        }
    }
    catch (Exception e)
    {
        Log($"  {workload} failed: {e}");
        rows.Add(Row.NotRun(workload, system, mode, "failed: " + e.GetType().Name + ": " + e.Message.ReplaceLineEndings(" ")) with { Storage = storage });
    }
}

// RabbitMQ in both connection layouts (the quick run: the one matching the broker's transport); the
// ratio is taken against its faster workload-1 row.
bool[] rabbitLayouts = s.Quick ? [!s.Http1] : [true, false];
foreach (var shared in rabbitLayouts)
{
    if (haveRabbit && s.Workloads.Contains(1)) await Run("1 e2e transactional", "RabbitMQ", "", () => rabbit.EndToEndAsync(shared));
}
foreach (var shared in rabbitLayouts)
{
    if (haveRabbit && s.Workloads.Contains(2)) await Run("2 plain sends", "RabbitMQ", "", () => rabbit.PublishOnlyAsync(shared));
}
if (haveBroker && (s.Workloads.Contains(1) || s.Workloads.Contains(2) || s.Workloads.Contains(3)))
{
    foreach (var (label, workloads, modes) in storages)
    {
        foreach (var m in modes) await RunMany("1-3", "HalfMsgBroker", m, () => workloads.RunModeAsync(m, s.Workloads), label);
    }
}
// Several brokers on one PostgreSQL database, all active (--pg-nodes): workload 1, producers and consumers on different nodes.
var pgWorkloads = storages.FirstOrDefault(x => x.Label == "PostgreSQL").Workloads;
string NodesLabel(int n) => $"PostgreSQL, {n} node{(n == 1 ? "" : "s")} multi-active";
if (haveBroker && pgWorkloads is not null && s.Workloads.Contains(1))
{
    foreach (var n in s.PgNodes) await RunMany("1", "HalfMsgBroker", "Fsync", () => pgWorkloads.RunNodesAsync(n), NodesLabel(n));
}
// Latency at a light load: nothing should wait on batching there (the same rows for RabbitMQ and each mode).
// Each mode gets a fresh broker; an external one (--broker-url) would see the first rows' transaction ids again.
if (s.LightRate > 0 && s.Rate == 0 && s.Workloads.Contains(1) && s.ExternalBrokerUrl is null)
{
    s.Rate = s.LightRate;
    if (haveRabbit) await Run("1 e2e transactional", "RabbitMQ", "", () => rabbit.EndToEndAsync(!s.Http1));
    if (haveBroker)
    {
        foreach (var (label, workloads, modes) in storages)
        {
            foreach (var m in modes) await RunMany("1", "HalfMsgBroker", m, () => workloads.RunModeAsync(m, new HashSet<int> { 1 }), label);
        }
        if (pgWorkloads is not null)
        {
            foreach (var n in s.PgNodes) await RunMany("1", "HalfMsgBroker", "Fsync", () => pgWorkloads.RunNodesAsync(n), NodesLabel(n));
        }
    }
    s.Rate = 0;
}
if (haveBroker && s.Workloads.Contains(4))
{
    foreach (var (label, workloads, _) in storages) await RunMany("4 check-back", "HalfMsgBroker", label == "LiteDB" ? "Process" : "Fsync", workloads.CheckBackAsync, label);
}
// Restart runs on LiteDB only: it measures the data folder and the journal's replay.
if (broker is not null && s.Workloads.Contains(5)) await Run("5 restart", "HalfMsgBroker", "Process", broker.RestartAsync, "LiteDB");

// The headline compares like with like: RabbitMQ confirms a persistent message once it is on disk, so
// the broker's Fsync row is the equal-durability one. Process mode is reported beside it, labelled.
// It is the single-message row; batched rows (--batch-sends) are extra rows, never the ratio. The
// light-load rows (--light-rate) get ratios of their own.
var ratios = new List<string>();
var ratio = "n/a";
foreach (var light in new[] { false, true })
{
    bool Pick(Row r) => r.Workload.StartsWith('1') && !r.Workload.Contains("(batches of", StringComparison.Ordinal) && !r.Workload.Contains("(one-way end)", StringComparison.Ordinal)
        && !r.Workload.Contains("HTTP/1.1", StringComparison.Ordinal) && r.Workload.Contains("offered", StringComparison.Ordinal) == light;
    var rq = rows.Where(r => Pick(r) && r.System.StartsWith("RabbitMQ", StringComparison.Ordinal) && !double.IsNaN(r.PerSecond)).MaxBy(r => r.PerSecond);
    foreach (var mode in new[] { "Fsync", BrokerHost.VisibleMode, "Process" })
    {
        var hm = rows.FirstOrDefault(r => Pick(r) && r.System == "HalfMsgBroker" && r.Storage == "LiteDB" && r.Mode == mode);
        if (hm is null || rq is null || rq.PerSecond <= 0 || double.IsNaN(hm.PerSecond)) continue;
        var label = mode switch
        {
            "Fsync" => "Fsync, equal durability (both confirm after fsync)",
            BrokerHost.VisibleMode => "Fsync-visible, equal durability and visibility (both confirm after fsync and deliver before it)",
            _ => "Process, NOT equal durability (the broker answers before fsync)",
        };
        ratios.Add(string.Create(CultureInfo.InvariantCulture,
            $"- {hm.Workload}, HalfMsgBroker {label} / RabbitMQ: throughput {hm.PerSecond / rq.PerSecond:F2}×, CPU per message {hm.CpuSecondsPer1k / rq.CpuSecondsPer1k:F2}×, p99 {hm.P99Ms / rq.P99Ms:F2}× ({hm.P99Ms:F1} vs {rq.P99Ms:F1} ms)"));
        if (!light && ratio == "n/a") ratio = (hm.PerSecond / rq.PerSecond).ToString("F2", CultureInfo.InvariantCulture) + $" ({mode})";
    }
    // The same workload with RocketMQ's one-way end: a ratio line of its own, never the headline.
    var oneWays = rows.Where(r => r.Workload.StartsWith('1') && r.Workload.Contains("(one-way end)", StringComparison.Ordinal)
        && r.Workload.Contains("offered", StringComparison.Ordinal) == light && r.System == "HalfMsgBroker" && r.Storage == "LiteDB" && !double.IsNaN(r.PerSecond));
    foreach (var oneWay in oneWays)
    {
        if (rq is null || rq.PerSecond <= 0) break;
        ratios.Add(string.Create(CultureInfo.InvariantCulture,
            $"- {oneWay.Workload}, HalfMsgBroker {oneWay.Mode} (equal durability; producers do not wait for the commit's answer, as RocketMQ's endTransactionOneway) / RabbitMQ: throughput {oneWay.PerSecond / rq.PerSecond:F2}×, CPU per message {oneWay.CpuSecondsPer1k / rq.CpuSecondsPer1k:F2}×, p99 {oneWay.P99Ms / rq.P99Ms:F2}× ({oneWay.P99Ms:F1} vs {rq.P99Ms:F1} ms)"));
    }
    // PostgreSQL rows: against RabbitMQ, and against the LiteDB Fsync row (the same promise). CPU per
    // message counts the broker alone and the broker plus PostgreSQL, which is what a host pays.
    var pg = rows.FirstOrDefault(r => Pick(r) && r.System == "HalfMsgBroker" && r.Storage == "PostgreSQL" && !double.IsNaN(r.PerSecond));
    if (pg is null) continue;
    var pgBoth = pg.CpuSecondsPer1k + pg.DbCpuSecondsPer1k;
    if (rq is not null && rq.PerSecond > 0)
    {
        ratios.Add(string.Create(CultureInfo.InvariantCulture,
            $"- {pg.Workload}, HalfMsgBroker on PostgreSQL (synchronous_commit on, equal durability) / RabbitMQ: throughput {pg.PerSecond / rq.PerSecond:F2}×, CPU per message {pg.CpuSecondsPer1k / rq.CpuSecondsPer1k:F2}× (broker alone), {pgBoth / rq.CpuSecondsPer1k:F2}× (broker + PostgreSQL), p99 {pg.P99Ms / rq.P99Ms:F2}× ({pg.P99Ms:F1} vs {rq.P99Ms:F1} ms)"));
    }
    var lite = rows.FirstOrDefault(r => Pick(r) && r.System == "HalfMsgBroker" && r.Storage == "LiteDB" && r.Mode == "Fsync" && !double.IsNaN(r.PerSecond));
    if (lite is not null && lite.PerSecond > 0)
    {
        ratios.Add(string.Create(CultureInfo.InvariantCulture,
            $"- {pg.Workload}, PostgreSQL / LiteDB (both Fsync): throughput {pg.PerSecond / lite.PerSecond:F2}×, broker CPU per message {pg.CpuSecondsPer1k / lite.CpuSecondsPer1k:F2}×, broker + PostgreSQL {pgBoth / lite.CpuSecondsPer1k:F2}× LiteDB's broker ({pgBoth:F3} vs {lite.CpuSecondsPer1k:F3} s/1k), p99 {pg.P99Ms / lite.P99Ms:F2}× ({pg.P99Ms:F1} vs {lite.P99Ms:F1} ms)"));
    }
}

// Node rows: what a message costs the machine as nodes are added (broker CPU summed over the nodes, plus PostgreSQL's).
foreach (var r in rows.Where(r => r.Storage.EndsWith("multi-active", StringComparison.Ordinal) && !double.IsNaN(r.PerSecond)))
{
    ratios.Add(string.Create(CultureInfo.InvariantCulture,
        $"- {r.Workload}, {r.Storage}: {r.PerSecond:F0} msg/s, commit → receive{(r.Workload.Contains("nodes)", StringComparison.Ordinal) ? " (producers and consumers spread over the nodes)" : "")} p50 {r.P50Ms:F1} / p99 {r.P99Ms:F1} ms, brokers {r.CpuSecondsPer1k:F3} + PostgreSQL {r.DbCpuSecondsPer1k:F3} = {r.CpuSecondsPer1k + r.DbCpuSecondsPer1k:F3} CPU s/1k"));
}

// Group the table by workload (RabbitMQ first within one), whatever order the rows ran in.
rows = [.. rows.Select((r, i) => (r, i)).OrderBy(x => x.r.Workload[0]).ThenBy(x => x.r.System.StartsWith("RabbitMQ", StringComparison.Ordinal) ? 0 : 1).ThenBy(x => x.i).Select(x => x.r)];
var md = new StringBuilder();
var kind = s.Quick ? "quick" : "full";
md.AppendLine(CultureInfo.InvariantCulture, $"# HalfMsgBroker vs RabbitMQ — {kind} run, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
md.AppendLine();
md.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Report.MachineLine()}");
md.AppendLine(CultureInfo.InvariantCulture, $"- Command: `{(string.IsNullOrEmpty(s.Command) ? "dotnet HalfMsgBroker.Bench.dll " + string.Join(' ', args) : s.Command)}`");
if (s.BrokerArgs.Count > 0) md.AppendLine(CultureInfo.InvariantCulture, $"- Extra broker arguments: `{string.Join(' ', s.BrokerArgs)}`");
if (!string.IsNullOrEmpty(s.BrokerCommit)) md.AppendLine(CultureInfo.InvariantCulture, $"- Broker: {s.BrokerCommit}");
if (postgres is not null)
{
    md.AppendLine(CultureInfo.InvariantCulture,
        $"- PostgreSQL: {postgres.Version}, a private cluster on 127.0.0.1 for this run on the same machine (default settings: fsync, synchronous_commit and full_page_writes on; max_connections 200), a fresh database per broker process{(s.PgMaxPoolSize > 0 ? $", Max Pool Size {s.PgMaxPoolSize}" : "")}; PG CPU = utime+stime of the postmaster and all its processes, with their ended children");
}
md.AppendLine(CultureInfo.InvariantCulture, $"- Load: P={s.Producers} producers, C={s.Consumers} consumers, batch/prefetch {s.BatchSize}, body ≈{s.PayloadBytes} B; {s.Measure.TotalSeconds:F0} s measured per row after a warm-up: a cold broker process until its CPU per message settles ({s.Warmup.TotalSeconds:F0}–{s.MaxWarmup.TotalSeconds:F0} s), a warm one and RabbitMQ {s.ShortWarmup.TotalSeconds:F0} s; workloads 1–3 of one durability mode share one broker process, run in that order; check-back N={s.CheckBackCount}; restart N={s.RestartCount}");
md.AppendLine(CultureInfo.InvariantCulture, $"- Load average at start {loadStart}, at end {Proc.LoadAverage()} (the machine is shared: see `others` in the notes — cores busy with processes other than the measured server and the generator)");
md.AppendLine(CultureInfo.InvariantCulture, $"- Total time {clock.Elapsed.TotalSeconds:F0} s");
md.AppendLine();
md.Append(Report.Table(rows));
md.AppendLine();
md.AppendLine("CPU s/1k msgs is the measured server's own CPU (utime+stime from /proc/PID/stat: the broker's dotnet process, or RabbitMQ's beam.smp) during the measured window divided by thousands of messages completed in it; RSS is VmRSS at the end of the window. Workload 4 (all due): msgs = distinct transactions checked, msg/s = checks/s. Mode `Fsync` is the broker's default durability (a 2xx means the group commit was fsynced: it survives power loss, like a RabbitMQ publisher confirm); `Fsync-visible` is `Fsync` with `Broker:Storage:VisibleBeforeFsync`: every 2xx still waits for the fsync, but consumers receive a change once it is written, while its fsync runs — as RabbitMQ delivers a persistent message before the fsync its confirm waits for; `Process` answers once the write reached the OS (it survives a crash of the broker process, not of the machine). With storage PostgreSQL, CPU s/1k msgs is still the broker's process alone and PG CPU s/1k msgs is the PostgreSQL cluster's (every postgres process) over the same window: their sum is what a message costs the machine.");
md.AppendLine();
foreach (var line in ratios) md.AppendLine(line);
md.AppendLine();
md.AppendLine(CultureInfo.InvariantCulture, $"e2e ratio halfmsg/rabbitmq: {ratio}");
var text = md.ToString();
Console.WriteLine(text);
if (!string.IsNullOrEmpty(s.Out))
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(s.Out))!);
    await File.WriteAllTextAsync(s.Out, text);
    Log($"written {s.Out}");
}
return 0;
