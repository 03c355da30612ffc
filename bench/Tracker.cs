using System.Diagnostics;

namespace HalfMsgBroker.Bench;

/// <summary>Hands out message numbers (k, bounded by capacity) and remembers when each was released
/// to consumers, so a consumer can turn a received k into a latency and spot duplicates.</summary>
internal sealed class Tracker(int capacity)
{
    private readonly long[] _releasedAt = new long[capacity];
    private readonly int[] _seen = new int[capacity];
    private long _next = -1;
    private long _released;
    private long _receivedUnique;
    private long _duplicates;
    private long _unknown;

    public long Released => Interlocked.Read(ref _released);
    public long ReceivedUnique => Interlocked.Read(ref _receivedUnique);
    public long Duplicates => Interlocked.Read(ref _duplicates);
    public long Unknown => Interlocked.Read(ref _unknown);
    public long Issued => Math.Min(Interlocked.Read(ref _next) + 1, _releasedAt.Length);

    /// <summary>The next message number, or -1 when the workload's count bound is reached.</summary>
    public long Next()
    {
        var k = Interlocked.Increment(ref _next);
        return k < _releasedAt.Length ? k : -1;
    }

    public void Release(long k, long timestamp)
    {
        Volatile.Write(ref _releasedAt[k], timestamp);
        Interlocked.Increment(ref _released);
    }

    public void MarkReleased(long k) => Release(k, Stopwatch.GetTimestamp());

    /// <summary>Returns the release timestamp when this is the first time k arrives; 0 for a duplicate
    /// or an unknown k (or one not yet released: then it counts as seen, with no latency).</summary>
    public long Receive(long k, out bool first)
    {
        first = false;
        if (k < 0 || k >= _releasedAt.Length)
        {
            Interlocked.Increment(ref _unknown);
            return 0;
        }
        if (Interlocked.Exchange(ref _seen[k], 1) != 0)
        {
            Interlocked.Increment(ref _duplicates);
            return 0;
        }
        first = true;
        Interlocked.Increment(ref _receivedUnique);
        return Volatile.Read(ref _releasedAt[k]);
    }

    public async Task<bool> WaitAllReceivedAsync(TimeSpan timeout)
    {
        var end = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < end)
        {
            if (ReceivedUnique >= Released) return true;
            await Task.Delay(50);
        }
        return ReceivedUnique >= Released;
    }
}
