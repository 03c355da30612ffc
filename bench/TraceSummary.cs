using System.Globalization;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Etlx;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace HalfMsgBroker.Bench;

/// <summary>`--analyze-trace file.nettrace`: allocation by type (GC AllocationTick samples, one per
/// ~100 KB allocated), GC counts and pauses, lock contention and exceptions from a
/// `dotnet-trace collect --profile gc-verbose` (+ contention, exception keywords) trace.</summary>
internal static class TraceSummary
{
    public static int Print(string path)
    {
        var alloc = new Dictionary<string, (long Bytes, int Samples)>(StringComparer.Ordinal);
        var gcs = new int[3];
        var exceptions = new Dictionary<string, int>(StringComparer.Ordinal);
        double first = double.NaN, last = 0, pauseMs = 0, suspendStart = double.NaN;
        long contentions = 0;
        double contentionMs = 0;
        var contentionStart = new Dictionary<int, double>();
        var jitted = new Dictionary<string, int>(StringComparer.Ordinal);
        var tiers = new Dictionary<string, int>(StringComparer.Ordinal);

        using (var source = new EventPipeEventSource(path))
        {
            var clr = source.Clr;
            source.AllEvents += e =>
            {
                if (double.IsNaN(first)) first = e.TimeStampRelativeMSec;
                last = e.TimeStampRelativeMSec;
            };
            clr.GCAllocationTick += (GCAllocationTickTraceData d) =>
            {
                var key = d.TypeName ?? "?";
                var (b, n) = alloc.GetValueOrDefault(key);
                alloc[key] = (b + d.AllocationAmount64, n + 1);
            };
            clr.GCStart += (GCStartTraceData d) =>
            {
                if (d.Depth is >= 0 and <= 2) gcs[d.Depth]++;
            };
            clr.GCSuspendEEStart += (GCSuspendEETraceData d) => suspendStart = d.TimeStampRelativeMSec;
            clr.GCRestartEEStop += (GCNoUserDataTraceData d) =>
            {
                if (!double.IsNaN(suspendStart)) pauseMs += d.TimeStampRelativeMSec - suspendStart;
                suspendStart = double.NaN;
            };
            clr.ContentionStart += (ContentionStartTraceData d) =>
            {
                contentions++;
                contentionStart[d.ThreadID] = d.TimeStampRelativeMSec;
            };
            clr.ContentionStop += (ContentionStopTraceData d) =>
            {
                if (contentionStart.Remove(d.ThreadID, out var t0)) contentionMs += d.TimeStampRelativeMSec - t0;
            };
            clr.ExceptionStart += (ExceptionTraceData d) =>
            {
                var key = d.ExceptionType ?? "?";
                exceptions[key] = exceptions.GetValueOrDefault(key) + 1;
            };
            clr.MethodJittingStarted += (MethodJittingStartedTraceData d) =>
            {
                var ns = d.MethodNamespace ?? "?";
                var cut = ns.IndexOfAny(['`', '[', '+']);
                if (cut > 0) ns = ns[..cut];
                jitted[ns] = jitted.GetValueOrDefault(ns) + 1;
            };
            clr.MethodLoadVerbose += (MethodLoadUnloadVerboseTraceData d) =>
            {
                var key = d.OptimizationTier.ToString();
                tiers[key] = tiers.GetValueOrDefault(key) + 1;
            };
            source.Process();
        }

        var seconds = Math.Max(0.001, (last - first) / 1000.0);
        var total = alloc.Values.Sum(v => v.Bytes);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Format(inv, "trace span {0:F1} s; allocated ≈ {1:F1} MB/s (AllocationTick samples, ≈100 KB each); GCs gen0 {2}, gen1 {3}, gen2 {4}; suspended for GC {5:F0} ms ({6:F1}% of the span)",
            seconds, total / seconds / 1e6, gcs[0], gcs[1], gcs[2], pauseMs, pauseMs / 10 / seconds));
        Console.WriteLine(string.Format(inv, "lock contention: {0} waits ({1:F0}/s), {2:F0} ms waited in all", contentions, contentions / seconds, contentionMs));
        Console.WriteLine(string.Format(inv, "exceptions: {0}", exceptions.Count == 0 ? "none" : string.Join(", ", exceptions.OrderByDescending(e => e.Value).Select(e => $"{e.Key} ×{e.Value}"))));
        Console.WriteLine(string.Format(inv, "methods jitted: {0} ({1:F0}/s); by tier: {2}", jitted.Values.Sum(), jitted.Values.Sum() / seconds,
            string.Join(", ", tiers.OrderByDescending(t => t.Value).Select(t => $"{t.Key} {t.Value}"))));
        Console.WriteLine("jitted by type (top 15): " + string.Join(", ", jitted.OrderByDescending(j => j.Value).Take(15).Select(j => $"{j.Key} ×{j.Value}")));
        Console.WriteLine();
        Console.WriteLine("| allocated type | MB/s | share |");
        Console.WriteLine("| --- | ---: | ---: |");
        foreach (var (type, (bytes, _)) in alloc.OrderByDescending(a => a.Value.Bytes).Take(25))
        {
            Console.WriteLine(string.Format(inv, "| `{0}` | {1:F2} | {2:P1} |", type, bytes / seconds / 1e6, total == 0 ? 0 : bytes / (double)total));
        }
        PrintAllocationSites(path, [.. alloc.OrderByDescending(a => a.Value.Bytes).Take(8).Select(a => a.Key)]);
        return 0;
    }

    /// <summary>Where the top types are allocated: the first managed frames of the AllocationTick
    /// samples' stacks (names come from the trace's method load and rundown events).</summary>
    private static void PrintAllocationSites(string path, IReadOnlyList<string> types)
    {
        const int Frames = 5;
        var sites = types.ToDictionary(t => t, _ => new Dictionary<string, long>(StringComparer.Ordinal), StringComparer.Ordinal);
        var etlx = TraceLog.CreateFromEventPipeDataFile(path, Path.ChangeExtension(path, ".etlx"));
        using var log = new TraceLog(etlx);
        foreach (var e in log.Events)
        {
            if (e is not GCAllocationTickTraceData d || d.TypeName is not { } type || !sites.TryGetValue(type, out var bySite)) continue;
            var names = new List<string>(Frames);
            for (var frame = e.CallStack(); frame is not null && names.Count < Frames; frame = frame.Caller)
            {
                var name = frame.CodeAddress.FullMethodName;
                if (string.IsNullOrEmpty(name)) continue;
                var paren = name.IndexOf('(');
                names.Add(paren > 0 ? name[..paren] : name);
            }
            var site = names.Count == 0 ? "(no managed frames)" : string.Join(" ← ", names);
            bySite[site] = bySite.GetValueOrDefault(site) + d.AllocationAmount64;
        }
        Console.WriteLine();
        Console.WriteLine("Allocation sites of the top types (share of the type's sampled bytes; innermost frame first):");
        foreach (var type in types)
        {
            var bySite = sites[type];
            var sum = Math.Max(1, bySite.Values.Sum());
            Console.WriteLine($"- `{type}`");
            foreach (var (site, bytes) in bySite.OrderByDescending(x => x.Value).Take(3))
            {
                Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "  - {0:P0} {1}", bytes / (double)sum, site));
            }
        }
    }
}
