using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>The writer's count of unique-key hashes, filled in the background after start-up: it may run high, never low.</summary>
[Trait("Storage", "LiteDb")]
public sealed class StoredKeyHashesTests
{
    private readonly object _writeLock = new();
    private readonly SemaphoreSlim _release = new(0);

    private IEnumerable<string> StoredKeys(params string[] keys)
    {
        _release.Wait(TimeSpan.FromSeconds(30));
        foreach (var key in keys) yield return key;
    }

    [Fact]
    public async Task Every_key_may_be_held_until_the_stored_keys_are_counted_and_then_only_counted_ones()
    {
        var hashes = new StoredKeyHashes(() => StoredKeys("x:stored"), _writeLock, NullLogger.Instance);
        hashes.Start();
        lock (_writeLock) Assert.True(hashes.MayHold("x:never-used"));

        _release.Release();
        await Eventually.Until(() => { lock (_writeLock) return hashes.Counted; }, "the stored keys counted");
        lock (_writeLock)
        {
            Assert.True(hashes.MayHold("x:stored"));
            Assert.False(hashes.MayHold("x:never-used"));
            hashes.Added("x:new");
            Assert.True(hashes.MayHold("x:new"));
            hashes.Removed("x:new");
            Assert.False(hashes.MayHold("x:new"));
        }
        hashes.Stop();
    }

    [Fact]
    public async Task Keys_added_while_counting_are_kept_and_removals_before_the_merge_are_not_subtracted()
    {
        // The store's count may already lack a key whose delete LiteDB applied: subtracting that delete
        // too could take away the count of another key with the same hash, so it is not subtracted.
        var hashes = new StoredKeyHashes(() => StoredKeys("x:kept"), _writeLock, NullLogger.Instance);
        hashes.Start();
        lock (_writeLock)
        {
            hashes.Added("x:added-meanwhile");
            hashes.Removed("x:kept");
            hashes.Removed("x:deleted-meanwhile");
        }
        _release.Release();
        await Eventually.Until(() => { lock (_writeLock) return hashes.Counted; }, "the stored keys counted");
        lock (_writeLock)
        {
            Assert.True(hashes.MayHold("x:added-meanwhile"));
            Assert.True(hashes.MayHold("x:kept"));
        }
        hashes.Stop();
    }
}
