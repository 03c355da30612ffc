using System.Diagnostics;
using HdrHistogram;

namespace HalfMsgBroker.Bench;

/// <summary>Latencies (microseconds) and counts of one side of a workload. Each task records into its
/// own histogram; they are added up at the end, so recording takes no lock.</summary>
internal sealed class Recorder
{
    private readonly List<LongHistogram> _parts = [];
    private long _count;
    private long _errors;
    public volatile bool Recording;

    public long Count => Interlocked.Read(ref _count);
    public long Errors => Interlocked.Read(ref _errors);

    public LongHistogram NewPart()
    {
        var h = new LongHistogram(120_000_000L, 3);
        lock (_parts) _parts.Add(h);
        return h;
    }

    /// <summary>Counts one completed message; records its latency when inside the measured window.</summary>
    public void Complete(LongHistogram part, long startTimestamp, long now)
    {
        if (!Recording) return;
        Interlocked.Increment(ref _count);
        if (startTimestamp <= 0) return;
        var us = (long)((now - startTimestamp) * 1_000_000.0 / Stopwatch.Frequency);
        lock (part) part.RecordValue(Math.Clamp(us, 0, 120_000_000L));
    }

    public void Error() => Interlocked.Increment(ref _errors);

    public LongHistogram Merged()
    {
        var all = new LongHistogram(120_000_000L, 3);
        lock (_parts)
        {
            foreach (var p in _parts)
            {
                lock (p) all.Add(p);
            }
        }
        return all;
    }
}

internal static class HistogramExtensions
{
    public static double Ms(this LongHistogram h, double percentile) =>
        h.TotalCount == 0 ? double.NaN : h.GetValueAtPercentile(percentile) / 1000.0;

    public static double MaxMs(this LongHistogram h) => h.TotalCount == 0 ? double.NaN : h.GetMaxValue() / 1000.0;
}
