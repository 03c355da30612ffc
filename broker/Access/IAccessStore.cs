namespace HalfMsgBroker.Access;

/// <summary>One audited change: who, when, what, and to what.</summary>
public sealed record AuditEntry(long Id, long At, string Actor, string Action, string Target, string? Detail);

/// <summary>
/// The storage port of access control: API keys and the audit trail. Both change rarely (a key a day,
/// an audit entry per admin change), so unlike messages they are written straight through, one
/// durable write each, from any thread.
/// </summary>
public interface IAccessStore : IDisposable
{
    IReadOnlyList<ApiKey> Keys();

    void SaveKey(ApiKey key);

    /// <summary>
    /// Revokes the key as stored, reading and writing it in one transaction (another broker on the same database may
    /// have revoked it already); null when no key has <paramref name="id"/> or it is revoked already.
    /// </summary>
    ApiKey? Revoke(string id, long at);

    /// <summary>Records when keys were last used, many at once.</summary>
    void SaveLastUsed(IReadOnlyDictionary<string, long> lastUsedById);

    /// <summary>Appends an entry and returns it with its id (ascending, the listing's cursor).</summary>
    AuditEntry Append(long at, string actor, string action, string target, string? detail);

    /// <summary>Entries with an id above <paramref name="after"/>, oldest first.</summary>
    IReadOnlyList<AuditEntry> Audit(long after, int limit, string? target = null);

    /// <summary>Deletes entries older than <paramref name="before"/>; returns how many.</summary>
    int PurgeAudit(long before);
}
