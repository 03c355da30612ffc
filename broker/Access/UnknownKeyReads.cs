namespace HalfMsgBroker.Access;

/// <summary>
/// Many active brokers on one database: a key created through another broker reaches this one's memory only when its
/// notification arrives, so an unknown key may be one it has not heard of yet, and is worth reading the keys again for.
/// Authentication is the unauthenticated path, though, so this caps what unknown keys cost: at most
/// <c>Broker:Auth:UnknownKeyReadsPerSecond</c> reads a second, whoever sends them (a token bucket holding a second's
/// worth: a flood of random keys, each one new, gets no more than that, which a cache of misses alone would not stop),
/// and a key read for and not found is refused from memory for <see cref="RememberMiss"/> (so a client retrying a wrong
/// or revoked key does not spend the budget that a new key needs).
/// A key refused without a read is refused as before this broker read anything: it works once the notification arrives.
/// </summary>
internal sealed class UnknownKeyReads(int perSecond, TimeProvider time)
{
    /// <summary>How long a key read and not found is refused without reading. A key is 256 random bits: one not stored when
    /// it was presented is not stored later either, so this only bounds memory, with <see cref="MaxRemembered"/>.</summary>
    internal static readonly TimeSpan RememberMiss = TimeSpan.FromSeconds(60);

    internal const int MaxRemembered = 10_000;

    private readonly Lock _gate = new();
    private readonly Dictionary<string, long> _missedUntil = new(StringComparer.Ordinal);
    private readonly double _perSecond = Math.Max(1, perSecond);
    private double _tokens = Math.Max(1, perSecond);
    private long _refilledAt = time.GetTimestamp();
    private long _reads;

    /// <summary>How many reads unknown keys cost (tests).</summary>
    internal long Reads => Interlocked.Read(ref _reads);

    /// <summary>Whether the unknown key with hash <paramref name="hashHex"/> may be looked for in the store now; counts the read.</summary>
    public bool MayRead(string hashHex)
    {
        lock (_gate)
        {
            var now = time.GetTimestamp();
            if (_missedUntil.TryGetValue(hashHex, out var until))
            {
                if (until > now) return false;
                _missedUntil.Remove(hashHex);
            }
            _tokens = Math.Min(_perSecond, _tokens + time.GetElapsedTime(_refilledAt, now).TotalSeconds * _perSecond);
            _refilledAt = now;
            if (_tokens < 1) return false;
            _tokens -= 1;
            Interlocked.Increment(ref _reads);
            return true;
        }
    }

    /// <summary>The key was read for and is not stored (or revoked): refused without reading for a while.</summary>
    public void Missed(string hashHex)
    {
        lock (_gate)
        {
            var now = time.GetTimestamp();
            if (_missedUntil.Count >= MaxRemembered)
            {
                foreach (var (hash, until) in _missedUntil.ToList())
                {
                    if (until <= now) _missedUntil.Remove(hash);
                }
                // Still full: not remembered, and the budget still caps the reads.
                if (_missedUntil.Count >= MaxRemembered) return;
            }
            _missedUntil[hashHex] = now + (long)(RememberMiss.TotalSeconds * time.TimestampFrequency);
        }
    }
}
