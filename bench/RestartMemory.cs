using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;

namespace HalfMsgBroker.Bench;

/// <summary>
/// <c>--restart-memory</c>: how fast a broker holding N stored messages is ready again after a restart,
/// and how much memory it holds then. Two scenarios, each on a fresh broker filled through the batch
/// endpoints: <c>open</c> (N committed messages on a topic with one pull group, 90 % received and
/// acked, 5 % received and left in flight, 5 % left ready) and <c>prepared</c> (N half messages
/// whose first check-back is a day away, so none is checked during the run). Each is then stopped
/// with kill -9 and restarted, then stopped cleanly and restarted, on the same data path.
/// </summary>
internal sealed class RestartMemory(Settings s, Action<string> log)
{
    private const string Topic = "bench-rm";
    private const string Group = "bench-rm-consumers";
    private const string ProducerGroup = "bench-rm-producers";
    private const int BatchItems = 100;
    private const int Concurrency = 16;

    private readonly List<string> _rows = [];
    private readonly List<string> _logLines = [];

    public static async Task<int> RunAsync(Settings s, Action<string> log)
    {
        var run = new RestartMemory(s, log);
        var started = Stopwatch.GetTimestamp();
        foreach (var scenario in s.RestartMemoryScenarios) await run.ScenarioAsync(scenario);
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"# Restart memory — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Report.MachineLine()}");
        md.AppendLine(CultureInfo.InvariantCulture, $"- Command: `{(string.IsNullOrEmpty(s.Command) ? "dotnet HalfMsgBroker.Bench.dll " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)) : s.Command)}`");
        if (s.BrokerArgs.Count > 0) md.AppendLine(CultureInfo.InvariantCulture, $"- Extra broker arguments: `{string.Join(' ', s.BrokerArgs)}`");
        if (!string.IsNullOrEmpty(s.BrokerCommit)) md.AppendLine(CultureInfo.InvariantCulture, $"- Broker: {s.BrokerCommit}");
        md.AppendLine(CultureInfo.InvariantCulture, $"- N = {s.RestartMemoryCount} messages per scenario, body ≈{s.PayloadBytes} B, durability Process; total time {Stopwatch.GetElapsedTime(started).TotalSeconds:F0} s");
        md.AppendLine();
        md.AppendLine("| scenario | stop | ready (ms) | RSS at ready (MiB) | RSS +10 s (MiB) | RSS after forced GC (MiB) | managed heap after GC (MiB) | RSS before stop (MiB) | data (MiB) | load average |");
        md.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        foreach (var row in run._rows) md.AppendLine(row);
        md.AppendLine();
        md.AppendLine("Ready = process start → first `200` of `GET /health/ready`. RSS = VmRSS from /proc. \"Forced GC\": `dotnet-gcdump collect` "
                      + "(a full blocking GC) 10 s after ready, when `--gcdump-tool` is given; managed heap = the dump's total object bytes.");
        md.AppendLine();
        md.AppendLine("Start-up log lines of each restart:");
        md.AppendLine();
        md.AppendLine("```");
        foreach (var line in run._logLines) md.AppendLine(line);
        md.AppendLine("```");
        var text = md.ToString();
        Console.WriteLine(text);
        if (!string.IsNullOrEmpty(s.Out))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(s.Out))!);
            await File.WriteAllTextAsync(s.Out, text);
            log($"written {s.Out}");
        }
        return 0;
    }

    private async Task ScenarioAsync(string scenario)
    {
        log($"restart memory: scenario {scenario}, {s.RestartMemoryCount} messages");
        await using var broker = await BrokerHost.StartAsync(s, "rm-" + scenario, "Process");
        using var client = new BrokerClient(broker.UriFor(s.Http1), s.PayloadBytes, s.Http1, broker.Keys);
        // While LiteDB is far behind the journal, the writer waits for it (MaxUnappliedChanges): a batch may take minutes.
        client.Http.Timeout = TimeSpan.FromMinutes(5);
        var fill = Stopwatch.GetTimestamp();
        switch (scenario)
        {
            case "open":
                await client.PutJsonAsync($"v1/consumer-groups/{Group}/subscriptions/{Topic}", "{\"tagFilter\":\"*\"}");
                await SendAsync(client, prepared: false);
                await ConsumeAsync(client);
                break;
            case "prepared":
                // A check URL on loopback that is never called: the first check is a day away.
                await client.PutJsonAsync($"v1/producer-groups/{ProducerGroup}", "{\"checkUrl\":\"http://127.0.0.1:9/check\",\"checkTimeoutMs\":3000}");
                await SendAsync(client, prepared: true);
                break;
            default:
                throw new ArgumentException($"unknown restart-memory scenario {scenario} (open, prepared)");
        }
        log($"  filled in {Stopwatch.GetElapsedTime(fill).TotalSeconds:F0} s");

        foreach (var kill in new[] { true, false })
        {
            // LiteDB first takes what the journal holds (an index query waits for that), as in a broker that has
            // run for a while: what is measured is the restart with N stored messages, not the replay of a backlog.
            await CaughtUpAsync(client);
            var rssBefore = Proc.RssMiB(broker.Pid);
            var mark = new FileInfo(broker.LogPath).Length;
            if (kill)
            {
                var pid = broker.Pid;
                Proc.Signal(pid, Proc.SigKill);
                await broker.StopAsync(TimeSpan.FromSeconds(30)); // waits for the exit of the killed process
            }
            else
            {
                await broker.StopAsync(TimeSpan.FromSeconds(120));
            }
            var bytes = Proc.DirectoryBytes(broker.DataPath);
            await broker.StartProcessAsync(TimeSpan.FromSeconds(300));
            var rssReady = Proc.RssMiB(broker.Pid);
            await Task.Delay(TimeSpan.FromSeconds(10));
            var rssSettled = Proc.RssMiB(broker.Pid);
            var (heapMiB, top) = await GcDumpAsync(broker.Pid, scenario + (kill ? "-kill" : "-clean"));
            var rssAfterGc = Proc.RssMiB(broker.Pid);
            var stop = kill ? "kill -9" : "clean stop";
            _rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {scenario} | {stop} | {broker.ReadyMs:F0} | {rssReady:F0} | {rssSettled:F0} | {Fmt(rssAfterGc, heapMiB)} | {Fmt(heapMiB, heapMiB)} | {rssBefore:F0} | {bytes / 1048576.0:F0} | {Proc.LoadAverage()} |"));
            log($"  {scenario} / {stop}: ready {broker.ReadyMs:F0} ms, RSS {rssReady:F0} → {rssSettled:F0} MiB (+10 s), heap {heapMiB:F0} MiB");
            _logLines.Add($"# {scenario}, after {stop}:");
            _logLines.AddRange(StartupLines(broker.LogPath, mark));
            if (top.Count > 0)
            {
                _logLines.Add($"# {scenario}, after {stop}: largest types on the managed heap (dotnet-gcdump report: total, objects × type)");
                _logLines.AddRange(top);
            }
            await CheckReceiveAsync(client, scenario);
        }
        await broker.StopAsync(TimeSpan.FromSeconds(120));
        try
        {
            Directory.Delete(Path.GetDirectoryName(broker.DataPath)!, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task CaughtUpAsync(BrokerClient client)
    {
        var t = Stopwatch.GetTimestamp();
        for (var i = 0; ; i++)
        {
            try
            {
                await client.GetStringAsync("v1/topics");
                break;
            }
            catch (HttpRequestException) when (i < 20)
            {
                // 503: LiteDB took more than 30 s to catch up; ask again.
            }
        }
        log($"  LiteDB caught up with the journal in {Stopwatch.GetElapsedTime(t).TotalSeconds:F0} s");
        await Task.Delay(TimeSpan.FromSeconds(2));
    }

    private static string Fmt(double value, double present) => double.IsNaN(present) ? "n/a" : value.ToString("F0", CultureInfo.InvariantCulture);

    /// <summary>Sends N messages (or half messages) through the batch endpoint, <see cref="Concurrency"/> requests at a time.</summary>
    private async Task SendAsync(BrokerClient client, bool prepared)
    {
        var total = s.RestartMemoryCount;
        var next = -1L;
        var sent = 0L;
        var runId = Guid.NewGuid().ToString("N")[..8];
        async Task Worker()
        {
            var items = new List<(string, long)>(BatchItems);
            var ks = new List<long>(BatchItems);
            while (true)
            {
                var batch = Interlocked.Increment(ref next);
                var from = batch * BatchItems;
                if (from >= total) return;
                var count = (int)Math.Min(BatchItems, total - from);
                HttpStatusCode status;
                if (prepared)
                {
                    items.Clear();
                    for (var i = 0; i < count; i++) items.Add(($"rm-{runId}-{from + i}", from + i));
                    status = await client.SendHalfBatchAsync(Topic, ProducerGroup, items, CancellationToken.None, immunitySeconds: 86_400);
                }
                else
                {
                    ks.Clear();
                    for (var i = 0; i < count; i++) ks.Add(from + i);
                    status = await client.SendPlainBatchAsync(Topic, ks, CancellationToken.None);
                }
                if (status != HttpStatusCode.OK) throw new InvalidOperationException($"batch send answered {(int)status}");
                if (Interlocked.Add(ref sent, count) % 100_000 < count) log($"  stored {Volatile.Read(ref sent)} of {total}");
            }
        }
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(_ => Task.Run(Worker)));
    }

    /// <summary>Receives and acks 90 % of the messages, then receives 5 % more without acking them; 5 % stay ready.</summary>
    private async Task ConsumeAsync(BrokerClient client)
    {
        var total = s.RestartMemoryCount;
        var toAck = total * 9 / 10;
        var toHold = total / 20;
        var acked = 0L;
        async Task AckWorker()
        {
            while (Volatile.Read(ref acked) < toAck)
            {
                var (status, msgs) = await client.ReceiveAsync(Group, Topic, 100, 1, CancellationToken.None);
                if (status != HttpStatusCode.OK) throw new InvalidOperationException($"receive answered {(int)status}");
                if (msgs.Count == 0) continue;
                var ack = await client.AckAsync(Group, msgs.Select(m => m.Handle), CancellationToken.None);
                if (ack != HttpStatusCode.OK) throw new InvalidOperationException($"ack answered {(int)ack}");
                var n = Interlocked.Add(ref acked, msgs.Count);
                if (n % 100_000 < msgs.Count) log($"  acked {n} of {toAck}");
            }
        }
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(AckWorker)));
        var held = 0;
        while (held < toHold)
        {
            var (status, msgs) = await client.ReceiveAsync(Group, Topic, Math.Min(100, toHold - held), 1, CancellationToken.None);
            if (status != HttpStatusCode.OK || msgs.Count == 0) break;
            held += msgs.Count;
        }
        log($"  acked {Volatile.Read(ref acked)}, left {held} in flight, the rest ready");
    }

    /// <summary>After the restart the open deliveries are handed out with their bodies (read back on demand).</summary>
    private async Task CheckReceiveAsync(BrokerClient client, string scenario)
    {
        if (scenario != "open") return;
        var t = Stopwatch.GetTimestamp();
        var (status, msgs) = await client.ReceiveAsync(Group, Topic, 100, 5, CancellationToken.None);
        var withBody = msgs.Count(m => m.K >= 0);
        log($"  first receive after restart: {(int)status}, {msgs.Count} messages ({withBody} with their body) in {Stopwatch.GetElapsedTime(t).TotalMilliseconds:F0} ms");
        if (status != HttpStatusCode.OK || msgs.Count == 0 || withBody != msgs.Count)
            throw new InvalidOperationException("the open deliveries were not handed out with their bodies after the restart");
        // Not acked: they become visible again, so the next restart sees the same backlog.
    }

    /// <summary>A gcdump (it forces a full GC first): total managed bytes and the largest types, or NaN without the tool.</summary>
    private async Task<(double HeapMiB, List<string> Top)> GcDumpAsync(int pid, string name)
    {
        if (string.IsNullOrEmpty(s.GcDumpTool)) return (double.NaN, []);
        var file = Path.Combine(s.WorkDir, $"rm-{name}.gcdump");
        if (File.Exists(file)) File.Delete(file);
        await RunToolAsync(s.GcDumpTool, $"collect -p {pid} -o '{file}'");
        var report = await RunToolAsync(s.GcDumpTool, $"report '{file}'");
        // The report: a header line, then "   bytes  count  type" rows sorted by size.
        var lines = report.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        // The report: "GC Heap bytes", then rows of "object bytes, count, type" (object bytes: the size of one).
        long totalBytes = 0;
        var rows = new List<(double MiB, string Line)>();
        foreach (var line in lines)
        {
            var parts = line.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2 || !long.TryParse(parts[0], NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out var bytes)) continue;
            if (parts[1] == "GC" && line.EndsWith("GC Heap bytes", StringComparison.Ordinal)) totalBytes = bytes;
            else if (parts.Length == 3 && long.TryParse(parts[1], NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out var count))
                rows.Add((bytes * count / 1048576.0, string.Create(CultureInfo.InvariantCulture, $"{bytes * count / 1048576.0,8:F1} MiB  {count,7} × {parts[2]}")));
        }
        var top = rows.OrderByDescending(r => r.MiB).Take(8).Select(r => r.Line).ToList();
        return (totalBytes / 1048576.0, top);
    }

    private static async Task<string> RunToolAsync(string tool, string args)
    {
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($"'{tool}' {args}");
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {tool}");
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await p.WaitForExitAsync(cts.Token);
        return await output + await error;
    }

    /// <summary>The broker's log lines about replay and recovery since <paramref name="from"/> (bytes into the log).</summary>
    private static List<string> StartupLines(string logPath, long from)
    {
        using var f = new FileStream(logPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        f.Seek(from, SeekOrigin.Begin);
        using var reader = new StreamReader(f);
        var lines = new List<string>();
        string? category = null;
        while (reader.ReadLine() is { } line)
        {
            // Console log entries are a "level: category[id]" line followed by the message line.
            if (category is not null && (category.Contains("Recovery", StringComparison.Ordinal) || category.Contains(".Storage.", StringComparison.Ordinal)))
                lines.Add(category.Trim() + " " + line.Trim());
            category = line.Length > 6 && line[4] == ':' && !char.IsWhiteSpace(line[0]) ? line : null;
        }
        return lines;
    }
}
