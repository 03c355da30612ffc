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
    /// <summary>
    /// What a check is assumed to take until one has finished. Optimistic on purpose: a backlog is
    /// planned before the first of its checks ends, and a plan too far apart is never pulled back in
    /// (100 ms here planned 100 K due checks of a fast producer at 36 a second), while a plan too close
    /// together only costs a second move for the checks that come due while the group is still busy.
    /// </summary>
    private const double FirstDurationMs = 5;

    /// <summary>Plans run this much slower than the limits, so a loop that wakes a little late finds the group ready.</summary>
    private const double Slack = 1.1;

    private readonly Lock _gate = new();
    private readonly List<long> _inFlight = [];
    private double _durationMs = FirstDurationMs;
    private TokenBucket? _bucket;
    // Fractional, so a pace faster than one check per millisecond is not rounded down to it.
    private double _plannedUntil;

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
    public bool MayStart => !AtInFlightCap && (_bucket?.HasToken ?? true);

    /// <summary>All maxChecksInFlight of the group's calls are out: its next check can start when one ends.</summary>
    public bool AtInFlightCap => Volatile.Read(ref Slots.Held) >= Slots.Cap;

    /// <summary>True when the rate limit, not the calls in flight, is what stops the group now.</summary>
    public bool OutOfTokens => _bucket is { HasToken: false };

    /// <summary>Most due checks one group holds in memory (ids only) while its calls are all out.</summary>
    public const int MaxHeld = 10_000;

    // Due checks waiting for one of the group's calls to end, oldest first, each with the time its index
    // entry was moved to (so BeginChecks knows the move was this hold's). An id in the queue but not in
    // the map was let go (see Renew). Touched by the loop only.
    private readonly Queue<Guid> _held = new();
    private readonly Dictionary<Guid, long> _heldUntil = [];
    private volatile int _heldCount;

    /// <summary>Read by a finishing check (any thread) to know whether the loop has checks to start.</summary>
    public bool HasHeld => _heldCount > 0;

    public bool IsHeld(Guid id) => _heldUntil.ContainsKey(id);

    /// <summary>
    /// How many checks to hold: what the group starts in <paramref name="holdFor"/> at its pace, so a
    /// held check rarely outlives its hold (each renewal is a write), up to <see cref="MaxHeld"/>.
    /// </summary>
    private int HoldRoom(TimeSpan holdFor) => (int)Math.Clamp(holdFor.TotalMilliseconds / Math.Max(IntervalMs(), 0.1), 1, MaxHeld);

    /// <summary>Holds a due check of a group at its in-flight limit; false when the hold is full.</summary>
    public bool TryHold(Guid id, long until, TimeSpan holdFor)
    {
        if (_heldUntil.Count >= HoldRoom(holdFor)) return false;
        _held.Enqueue(id);
        _heldUntil[id] = until;
        _heldCount = _heldUntil.Count;
        return true;
    }

    /// <summary>
    /// A held check whose hold ran out: held again until <paramref name="until"/>, or let go (false)
    /// when the group now turns out slower than the hold assumed, to be planned at its pace instead.
    /// </summary>
    public bool Renew(Guid id, long until, TimeSpan holdFor)
    {
        if (_heldUntil.Count > HoldRoom(holdFor))
        {
            _heldUntil.Remove(id);
            _heldCount = _heldUntil.Count;
            return false;
        }
        _heldUntil[id] = until;
        return true;
    }

    /// <summary>The oldest held check and the time its hold moved it to.</summary>
    public bool TryTakeHeld(out Guid id, out long heldUntil)
    {
        heldUntil = 0;
        while (_held.TryDequeue(out id))
        {
            if (!_heldUntil.Remove(id, out heldUntil)) continue;
            _heldCount = _heldUntil.Count;
            return true;
        }
        _heldCount = 0;
        return false;
    }

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
        _plannedUntil = Math.Max(_plannedUntil, nowMs) + Math.Max(IntervalMs(), 0.1);
        return (long)Math.Ceiling(_plannedUntil);
    }

    /// <summary>Nothing held, nothing planned ahead, no rate spent: forgetting the group loses nothing.</summary>
    public bool IsIdle(long nowMs) => Volatile.Read(ref Slots.Held) == 0 && _heldUntil.Count == 0 && _plannedUntil <= nowMs && (_bucket?.IsFull ?? true);

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
