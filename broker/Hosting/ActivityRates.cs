using System.Collections.Concurrent;
using HalfMsgBroker.Engine;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// The last <see cref="MaxMinutes"/> minutes of activity in <see cref="BucketSeconds"/>-second buckets,
/// in memory only, for the operator console's charts (<c>GET /v1/stats/topics</c>): per topic the
/// messages sent, committed, rolled back and acked, and the check-backs by outcome. A topic costs
/// a fixed ring (about 6 KiB) from its first message, and is forgotten once idle for the window;
/// a restart starts from empty. Figures come from durable group commits (<see cref="BatchTally"/>).
/// </summary>
internal sealed class ActivityRates(TimeProvider time)
{
    public const int BucketSeconds = 5;
    public const int MaxMinutes = 30;
    public const int Buckets = MaxMinutes * 60 / BucketSeconds;

    public static readonly string[] TopicSeries = ["sent", "committed", "rolledBack", "acked"];
    public static readonly string[] CheckOutcomes = ["commit", "rollback", "unknown", "failed", "unreachable"];

    private readonly ConcurrentDictionary<string, Ring> _topics = new(StringComparer.Ordinal);
    private readonly Ring _checks = new(CheckOutcomes.Length);
    private readonly long[] _checkTotals = new long[CheckOutcomes.Length];

    /// <summary>The number of the bucket <paramref name="unixMs"/> falls in.</summary>
    public static long BucketOf(long unixMs) => unixMs / (BucketSeconds * 1000L);

    public long CurrentBucket => BucketOf(time.GetUtcNow().ToUnixTimeMilliseconds());

    public void Record(BatchTally tally)
    {
        if (tally.TouchedTopics.Count == 0) return;
        var bucket = CurrentBucket;
        foreach (var topic in tally.TouchedTopics)
        {
            var ring = _topics.GetOrAdd(topic, static _ => new Ring(TopicSeries.Length));
            ring.Add(bucket, tally.TopicCounts(topic));
        }
    }

    public void Checked(string outcome)
    {
        var series = Array.IndexOf(CheckOutcomes, outcome);
        if (series < 0) return;
        Interlocked.Increment(ref _checkTotals[series]);
        _checks.Add(CurrentBucket, series, 1);
    }

    /// <summary>Check-backs since the broker started, per outcome (same order as <see cref="CheckOutcomes"/>).</summary>
    public long[] CheckTotals() => _checkTotals.Select(t => Interlocked.Read(ref t)).ToArray();

    /// <summary>Per topic with activity in the window, each series' counts for buckets <paramref name="from"/>..<paramref name="to"/>.</summary>
    public List<(string Topic, int[][] Series)> Topics(long from, long to)
    {
        var result = new List<(string, int[][])>();
        foreach (var (topic, ring) in _topics)
        {
            if (ring.LastBucket < to - Buckets)
            {
                // Idle for the whole window: nothing to show, so the ring goes (a new message brings it back).
                _topics.TryRemove(new KeyValuePair<string, Ring>(topic, ring));
                continue;
            }
            var series = ring.Read(from, to);
            if (series.Any(s => s.Any(c => c > 0))) result.Add((topic, series));
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Item1, b.Item1));
        return result;
    }

    public int[][] Checks(long from, long to) => _checks.Read(from, to);

    /// <summary>A fixed ring of buckets; a slot is reused once its bucket has left the window.</summary>
    private sealed class Ring(int series)
    {
        private readonly object _gate = new();
        private readonly long[] _bucketOfSlot = Enumerable.Repeat(-1L, Buckets).ToArray();
        private readonly int[] _counts = new int[Buckets * series];

        public long LastBucket { get; private set; } = -1;

        public void Add(long bucket, int[] counts)
        {
            lock (_gate)
            {
                var at = Slot(bucket);
                for (var s = 0; s < series; s++) _counts[at + s] += counts[s];
            }
        }

        public void Add(long bucket, int s, int n)
        {
            lock (_gate) _counts[Slot(bucket) + s] += n;
        }

        public int[][] Read(long from, long to)
        {
            var result = new int[series][];
            for (var s = 0; s < series; s++) result[s] = new int[to - from + 1];
            lock (_gate)
            {
                for (var b = Math.Max(from, to - Buckets + 1); b <= to; b++)
                {
                    var slot = (int)(b % Buckets);
                    if (_bucketOfSlot[slot] != b) continue;
                    for (var s = 0; s < series; s++) result[s][b - from] = _counts[slot * series + s];
                }
            }
            return result;
        }

        /// <summary>The first count of <paramref name="bucket"/>'s slot, cleared if it held an older bucket (under the lock).</summary>
        private int Slot(long bucket)
        {
            var slot = (int)(bucket % Buckets);
            if (_bucketOfSlot[slot] != bucket)
            {
                Array.Clear(_counts, slot * series, series);
                _bucketOfSlot[slot] = bucket;
            }
            if (bucket > LastBucket) LastBucket = bucket;
            return slot * series;
        }
    }
}
