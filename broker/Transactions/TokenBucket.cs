namespace HalfMsgBroker.Transactions;

/// <summary>
/// A token bucket that never lets more than <see cref="Rate"/> takes into any one second (any
/// half-open window of a second, wherever it starts). A bucket holding <c>C</c> tokens refilled at
/// <c>q</c> per second lets <c>C + q − 1</c> through in such a window (a full bucket, then what
/// trickles in before the window ends), so it holds <c>C = max(1, Rate / 10)</c> — a little room
/// for a loop that wakes late — and refills at <c>Rate − C + 1</c> per second. Not thread-safe: the
/// check-back loop is its only user.
/// </summary>
internal sealed class TokenBucket
{
    private readonly TimeProvider _time;
    private double _tokens;
    private long _refilledAt;

    public TokenBucket(int rate, TimeProvider time)
    {
        _time = time;
        Rate = Math.Max(1, rate);
        Capacity = Math.Max(1, Rate / 10);
        RefillPerSecond = Rate - Capacity + 1;
        _tokens = Capacity;
        _refilledAt = time.GetTimestamp();
    }

    public int Rate { get; }

    public int Capacity { get; }

    /// <summary>Tokens added per second, so also the long-run rate of a backlog.</summary>
    public int RefillPerSecond { get; }

    public bool HasToken
    {
        get
        {
            Refill();
            return _tokens >= 1;
        }
    }

    public bool TryTake()
    {
        Refill();
        if (_tokens < 1) return false;
        _tokens -= 1;
        return true;
    }

    /// <summary>Whether the bucket is full again, so forgetting it lets nothing extra through.</summary>
    public bool IsFull
    {
        get
        {
            Refill();
            return _tokens >= Capacity;
        }
    }

    private void Refill()
    {
        var now = _time.GetTimestamp();
        var elapsed = _time.GetElapsedTime(_refilledAt, now).TotalSeconds;
        _refilledAt = now;
        if (elapsed > 0) _tokens = Math.Min(Capacity, _tokens + elapsed * RefillPerSecond);
    }
}
