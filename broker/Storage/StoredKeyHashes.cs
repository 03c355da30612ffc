using System.Diagnostics;

namespace HalfMsgBroker.Storage;

/// <summary>
/// How many stored messages hold each transactionId/Idempotency-Key hash, so the writer can tell a new
/// key (nearly all of them) from one that needs an exact lookup without touching the store. Counting the
/// stored keys takes seconds with a million of them (LiteDB's index, read in chunks), so it runs on its
/// own thread after start-up and the broker is ready meanwhile: until it is done, every key is looked up.
/// A count may run high (a hash shared by two keys, a key the count read just before it was deleted),
/// which only costs a lookup; it never runs low, or a duplicate would get past the journal. So deletions
/// are not subtracted until the stored keys are merged in: subtracting one that the count then misses
/// (LiteDB had already applied its delete) could take away the count of another key with the same hash.
/// Every method but <see cref="Start"/> and <see cref="Stop"/> runs under the writer's lock, and so does the merge.
/// </summary>
internal sealed class StoredKeyHashes(Func<IEnumerable<string>> storedKeys, object writeLock, ILogger logger)
{
    private readonly Dictionary<int, int> _hashes = [];
    private Thread? _counter;
    private volatile bool _stopping;

    /// <summary>Whether the stored keys are counted in (tests and diagnostics).</summary>
    public bool Counted { get; private set; }

    public void Start()
    {
        _counter = new Thread(CountStored) { IsBackground = true, Name = "halfmsg-key-counter" };
        _counter.Start();
    }

    /// <summary>Stops the count (the store is closing) before the database it reads goes away.</summary>
    public void Stop()
    {
        _stopping = true;
        _counter?.Join(TimeSpan.FromSeconds(10));
    }

    /// <summary>False only when no stored message can hold the key.</summary>
    public bool MayHold(string key) => !Counted || _hashes.ContainsKey(Hash(key));

    public void Added(string key)
    {
        var hash = Hash(key);
        _hashes[hash] = _hashes.GetValueOrDefault(hash) + 1;
    }

    public void Removed(string key)
    {
        if (!Counted) return;
        var hash = Hash(key);
        var count = _hashes.GetValueOrDefault(hash) - 1;
        if (count > 0) _hashes[hash] = count;
        else _hashes.Remove(hash);
    }

    private static int Hash(string key) => key.GetHashCode(StringComparison.Ordinal);

    private void CountStored()
    {
        var started = Stopwatch.GetTimestamp();
        var stored = new Dictionary<int, int>();
        var keys = 0;
        try
        {
            foreach (var key in storedKeys())
            {
                if (_stopping) return;
                var hash = Hash(key);
                stored[hash] = stored.GetValueOrDefault(hash) + 1;
                keys++;
            }
        }
        catch (Exception e)
        {
            // Nothing is wrong with the keys: without the count, every new key is simply looked up.
            if (!_stopping) logger.LogWarning(e, "Counting the stored transaction ids and Idempotency-Keys failed; every new key is looked up in the store instead");
            return;
        }
        lock (writeLock)
        {
            foreach (var (hash, count) in stored) _hashes[hash] = _hashes.GetValueOrDefault(hash) + count;
            Counted = true;
        }
        logger.LogInformation("Counted the hashes of {Keys} stored transaction ids and Idempotency-Keys in {Elapsed:F0} ms (after start-up, in the background)",
            keys, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }
}
