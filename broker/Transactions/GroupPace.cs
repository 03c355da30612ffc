using HalfMsgBroker.Outbound;

namespace HalfMsgBroker.Transactions;

/// <summary>
/// One producer group's check-back limits and what the loop knows of its pace: its hold on the
/// check slots (<see cref="Slots"/>, capped at maxChecksInFlight), a <see cref="TokenBucket"/> for
/// maxChecksPerSecond, how long its checks take, and how far ahead its waiting checks are already
/// planned. A due check the group may not start now is not left at the head of the due-time index
/// (where it would hide every other group's checks): <see cref="Plan"/> gives it a time of its own
/// at the group's pace, after the ones planned before it, so the index itself becomes each group's
/// queue and the checks of all groups come due interleaved — round robin by due time.
/// Touched by the loop, except <see cref="Ended"/>, which a finishing check calls.
/// </summary>
internal sealed class GroupPace(TimeProvider time)
{
    /// <summary>What a check is assumed to take until one has finished.</summary>
    private const double FirstDurationMs = 100;

    /// <summary>Plans run this much slower than the limits, so a loop that wakes a little late finds the group ready.</summary>
    private const double Slack = 1.1;

    private readonly Lock _gate = new();
    private readonly List<long> _inFlight = [];
    private double _durationMs = FirstDurationMs;
    private TokenBucket? _bucket;
    private long _plannedUntil;

    public SlotOwner Slots { get; } = new();

    public int MaxInFlight => Slots.Cap;

    /// <summary>0 when the group has no rate limit.</summary>
    public int MaxPerSecond => _bucket?.Rate ?? 0;

    public void Configure(int maxInFlight, int maxPerSecond)
    {
        Slots.Cap = Math.Max(1, maxInFlight);
        if (maxPerSecond <= 0) _bucket = null;
        else if (_bucket?.Rate != maxPerSecond) _bucket = new TokenBucket(maxPerSecond, time);
    }

    /// <summary>Whether the group's own limits let it start a check now (the shared pool may still say no).</summary>
    public bool MayStart => Volatile.Read(ref Slots.Held) < Slots.Cap && (_bucket?.HasToken ?? true);

    /// <summary>Called once a slot is granted: the start counts against the rate even if the check then needs no call.</summary>
    public void Spend() => _bucket?.TryTake();

    /// <summary>Notes a call going out; pass the result to <see cref="Ended"/> when it ends.</summary>
    public long Started()
    {
        var at = time.GetTimestamp();
        lock (_gate) _inFlight.Add(at);
        return at;
    }

    public void Ended(long startedAt)
    {
        var took = time.GetElapsedTime(startedAt).TotalMilliseconds;
        lock (_gate)
        {
            _inFlight.Remove(startedAt);
            _durationMs = 0.8 * _durationMs + 0.2 * took;
        }
    }

    /// <summary>
    /// When a check the group may not start now should come due again: one interval after the last
    /// one planned (or after now). The interval is what the slower limit allows — a token's refill
    /// time, or a check's duration shared by maxChecksInFlight — where a check's duration is at
    /// least the age of the oldest one still running, so a producer that stopped answering is planned
    /// further apart the longer it hangs.
    /// </summary>
    public long Plan(long nowMs)
    {
        var interval = Math.Max(IntervalMs(), 1);
        _plannedUntil = Math.Max(_plannedUntil, nowMs) + (long)Math.Ceiling(interval);
        return _plannedUntil;
    }

    /// <summary>Nothing held, nothing planned ahead, no rate spent: forgetting the group loses nothing.</summary>
    public bool IsIdle(long nowMs) => Volatile.Read(ref Slots.Held) == 0 && _plannedUntil <= nowMs && (_bucket?.IsFull ?? true);

    private double IntervalMs()
    {
        double duration;
        lock (_gate)
        {
            duration = _durationMs;
            foreach (var at in _inFlight) duration = Math.Max(duration, time.GetElapsedTime(at).TotalMilliseconds);
        }
        var byCount = duration / Slots.Cap;
        var byRate = _bucket is { } bucket ? 1000.0 / bucket.RefillPerSecond : 0;
        return Slack * Math.Max(byCount, byRate);
    }
}
