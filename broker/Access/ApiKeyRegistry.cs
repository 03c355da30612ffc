using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Security.Cryptography;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Access;

/// <summary>
/// The keys in memory, looked up by the SHA-256 of the presented key, so authenticating a request
/// costs one hash and one dictionary probe, never a storage read. Creating and revoking a key write
/// through to the store and swap the lookup table at once: a revoked key is refused by the next
/// request. Last-used times are kept here and written in batches by <see cref="AccessMaintenanceService"/>.
/// </summary>
internal sealed class ApiKeyRegistry
{
    private readonly IAccessStore _store;
    private readonly TimeProvider _time;
    private readonly byte[]? _adminKeyHash;
    private readonly UnknownKeyReads? _unknownKeyReads;
    private readonly Lock _change = new();
    private readonly ConcurrentDictionary<string, long> _lastUsed = new(StringComparer.Ordinal);
    private Dictionary<string, ApiKey> _byId;
    private FrozenDictionary<string, (ApiKey Key, Caller Caller)> _byHash;

    /// <param name="unknownKeyReads">Many active brokers: an unknown key may be one created through another broker, read for within this budget.</param>
    public ApiKeyRegistry(IAccessStore store, IOptions<AuthOptions> options, TimeProvider time, UnknownKeyReads? unknownKeyReads = null)
    {
        _store = store;
        _time = time;
        _unknownKeyReads = unknownKeyReads;
        if (options.Value.AdminKey is { Length: > 0 } admin) _adminKeyHash = ApiKey.HashOf(admin);
        _byId = store.Keys().Where(k => k.RevokedAt is null).ToDictionary(k => k.Id, StringComparer.Ordinal);
        _byHash = Index(_byId.Values);
    }

    public int Count => _byId.Count;

    /// <summary>The caller a presented key stands for, or null for an unknown or revoked key.</summary>
    public Caller? Authenticate(ReadOnlySpan<char> presented)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        ApiKey.HashOf(presented, hash);
        if (_adminKeyHash is not null && CryptographicOperations.FixedTimeEquals(hash, _adminKeyHash)) return Caller.AdminKey;
        // The probe compares hashes, not keys: timing can tell an attacker nothing about a stored key.
        Span<char> hex = stackalloc char[SHA256.HashSizeInBytes * 2];
        Convert.TryToHexString(hash, hex, out _);
        if (!TryFind(hex, hash, out var found) && !TryFindUnheard(hex, hash, out found)) return null;
        // Coalesced to a second: a busy key does not write to shared memory on every request.
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        if (!_lastUsed.TryGetValue(found.Key.Id, out var last) || now - last >= 1000) _lastUsed[found.Key.Id] = now;
        return found.Caller;
    }

    private bool TryFind(ReadOnlySpan<char> hex, ReadOnlySpan<byte> hash, out (ApiKey Key, Caller Caller) found) =>
        _byHash.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(hex, out found) && CryptographicOperations.FixedTimeEquals(hash, found.Key.Hash);

    /// <summary>
    /// Many active brokers: a key this broker has not heard of may have been created through another one a moment ago.
    /// Within <see cref="UnknownKeyReads"/>' budget, the keys are read again as the notification's reload would read them
    /// (under the same lock, as committed, revoked ones left out), so a revocation is never undone by an older read.
    /// </summary>
    private bool TryFindUnheard(ReadOnlySpan<char> hex, ReadOnlySpan<byte> hash, out (ApiKey Key, Caller Caller) found)
    {
        found = default;
        if (_unknownKeyReads is null) return false;
        var hashHex = hex.ToString();
        lock (_change)
        {
            // Another request's read, or a reload, may have brought it meanwhile.
            if (TryFind(hex, hash, out found)) return true;
            if (!_unknownKeyReads.MayRead(hashHex)) return false;
            try
            {
                ReloadHoldingLock();
            }
            catch (StoreUnavailableException)
            {
                return false; // refused as it was before the read: the database's outage answers the key's other requests
            }
            if (TryFind(hex, hash, out found)) return true;
        }
        _unknownKeyReads.Missed(hashHex);
        return false;
    }

    public IReadOnlyList<ApiKey> List()
    {
        var keys = _byId.Values.ToList();
        return keys.Select(k => _lastUsed.TryGetValue(k.Id, out var used) ? k with { LastUsedAt = Math.Max(used, k.LastUsedAt ?? 0) } : k)
            .OrderBy(k => k.CreatedAt).ThenBy(k => k.Id, StringComparer.Ordinal).ToList();
    }

    /// <returns>The stored key and the secret, which exists only in this answer.</returns>
    public (ApiKey Key, string Secret) Create(string name, Role role, Scope producerGroups, Scope consumerGroups, Scope topics)
    {
        var secret = ApiKey.NewSecret();
        var key = new ApiKey
        {
            Id = ApiKey.NewId(),
            Name = name,
            Role = role,
            ProducerGroups = producerGroups,
            ConsumerGroups = consumerGroups,
            Topics = topics,
            Hash = ApiKey.HashOf(secret),
            CreatedAt = _time.GetUtcNow().ToUnixTimeMilliseconds(),
        };
        lock (_change)
        {
            _store.SaveKey(key);
            var byId = new Dictionary<string, ApiKey>(_byId, StringComparer.Ordinal) { [key.Id] = key };
            (_byId, _byHash) = (byId, Index(byId.Values));
        }
        return (key, secret);
    }

    /// <summary>
    /// Revokes the key as the store has it, not as memory does: another broker on the same database may have created or
    /// revoked it before this one heard. Memory then follows the store.
    /// </summary>
    /// <returns>The revoked key, or null when no active key has that id.</returns>
    public ApiKey? Revoke(string id)
    {
        lock (_change)
        {
            var revoked = _store.Revoke(id, _time.GetUtcNow().ToUnixTimeMilliseconds());
            if (_byId.ContainsKey(id))
            {
                var byId = new Dictionary<string, ApiKey>(_byId, StringComparer.Ordinal);
                byId.Remove(id);
                (_byId, _byHash) = (byId, Index(byId.Values));
            }
            _lastUsed.TryRemove(id, out _);
            return revoked;
        }
    }

    /// <summary>
    /// Reads every key from the store again: another broker on the same database created or revoked one. Last uses
    /// gathered here and not yet flushed stay.
    /// </summary>
    public void Reload()
    {
        // Read under the lock too: a key this broker saves meanwhile must not be swapped out by an older read.
        lock (_change) ReloadHoldingLock();
    }

    private void ReloadHoldingLock()
    {
        var stored = _store.Keys().Where(k => k.RevokedAt is null).ToDictionary(k => k.Id, StringComparer.Ordinal);
        (_byId, _byHash) = (stored, Index(stored.Values));
    }

    /// <summary>Writes the last-used times gathered since the previous flush, in one store write.</summary>
    public void FlushLastUsed()
    {
        if (_lastUsed.IsEmpty) return;
        var pending = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var id in _lastUsed.Keys)
        {
            if (_lastUsed.TryRemove(id, out var at) && _byId.ContainsKey(id)) pending[id] = at;
        }
        if (pending.Count == 0) return;
        _store.SaveLastUsed(pending);
        lock (_change)
        {
            var byId = new Dictionary<string, ApiKey>(_byId, StringComparer.Ordinal);
            foreach (var (id, at) in pending)
            {
                if (byId.TryGetValue(id, out var k)) byId[id] = k with { LastUsedAt = at };
            }
            (_byId, _byHash) = (byId, Index(byId.Values));
        }
    }

    private static FrozenDictionary<string, (ApiKey, Caller)> Index(IEnumerable<ApiKey> keys) =>
        keys.ToFrozenDictionary(k => Convert.ToHexString(k.Hash), k => (k, Caller.FromKey(k)), StringComparer.Ordinal);
}
