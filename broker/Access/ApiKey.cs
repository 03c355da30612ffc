using System.Security.Cryptography;
using System.Text;

namespace HalfMsgBroker.Access;

public enum Role
{
    Producer,
    Consumer,
    Admin,
}

/// <summary>
/// A stored API key: never the key itself, only the SHA-256 of it. A key is 256 random bits, so a
/// plain hash is enough (no password stretching: nothing to guess), and looking one up costs a
/// microsecond per request.
/// </summary>
public sealed record ApiKey
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required Role Role { get; init; }
    public required Scope ProducerGroups { get; init; }
    public required Scope ConsumerGroups { get; init; }
    public required Scope Topics { get; init; }
    public required byte[] Hash { get; init; }
    public required long CreatedAt { get; init; }
    public long? LastUsedAt { get; init; }
    public long? RevokedAt { get; init; }

    public const string Prefix = "hmb_";

    /// <summary>A new secret: the prefix (so secret scanners can spot a leaked key) and 256 random bits.</summary>
    public static string NewSecret() => Prefix + Base64Url(RandomNumberGenerator.GetBytes(32));

    public static string NewId() => "key_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    public static byte[] HashOf(string secret)
    {
        var hash = new byte[SHA256.HashSizeInBytes];
        HashOf(secret, hash);
        return hash;
    }

    /// <summary>The hash into a caller's buffer: authenticating a request allocates nothing.</summary>
    public static void HashOf(ReadOnlySpan<char> secret, Span<byte> hash)
    {
        var max = Encoding.UTF8.GetMaxByteCount(secret.Length);
        Span<byte> utf8 = max <= 256 ? stackalloc byte[max] : new byte[max];
        var n = Encoding.UTF8.GetBytes(secret, utf8);
        SHA256.HashData(utf8[..n], hash);
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>
/// The names a key may use of one kind: exact names and prefixes ending in <c>*</c> (<c>["*"]</c> is
/// all, empty is none).
/// </summary>
public sealed class Scope
{
    public static readonly Scope None = new([]);
    public static readonly Scope All = new(["*"]);

    private readonly HashSet<string> _exact = new(StringComparer.Ordinal);
    private readonly string[] _prefixes;

    public Scope(IReadOnlyList<string> entries)
    {
        Entries = entries;
        var prefixes = new List<string>();
        foreach (var e in entries)
        {
            if (e.EndsWith('*')) prefixes.Add(e[..^1]);
            else _exact.Add(e);
        }
        _prefixes = [.. prefixes];
    }

    public IReadOnlyList<string> Entries { get; }

    public bool IsEmpty => Entries.Count == 0;

    public bool Allows(string? name)
    {
        if (name is null) return false;
        if (_exact.Contains(name)) return true;
        foreach (var p in _prefixes)
        {
            if (name.StartsWith(p, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    /// <summary>An entry is a name (the broker's name rules) or a prefix of one followed by <c>*</c>.</summary>
    public static bool IsValidEntry(string? entry) =>
        entry is { Length: > 0 and <= 128 }
        && (entry == "*" || Lifecycle.Names.IsValidName(entry.EndsWith('*') ? entry[..^1] : entry));
}
