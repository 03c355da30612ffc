namespace HalfMsgBroker.Contracts;

public sealed record ApiKeyRequest
{
    public string? Name { get; init; }
    public string? Role { get; init; }
    public string[]? ProducerGroups { get; init; }
    public string[]? ConsumerGroups { get; init; }
    public string[]? Topics { get; init; }
}

/// <summary>A key as listed; <see cref="Key"/> is set only in the answer that creates it.</summary>
public sealed record ApiKeyView(
    string Id,
    string Name,
    string Role,
    IReadOnlyList<string> ProducerGroups,
    IReadOnlyList<string> ConsumerGroups,
    IReadOnlyList<string> Topics,
    DateTime CreatedAt,
    DateTime? LastUsedAt,
    string? Key);

public sealed record ApiKeyList(IReadOnlyList<ApiKeyView> ApiKeys);

public sealed record AuditEntryView(long Id, DateTime At, string Actor, string Action, string Target, string? Detail);

public sealed record AuditList(IReadOnlyList<AuditEntryView> Entries, string? Next);
