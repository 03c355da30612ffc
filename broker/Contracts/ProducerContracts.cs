using System.Text.Json;
using System.Text.Json.Serialization;

namespace HalfMsgBroker.Contracts;

public sealed record SendMessageRequest
{
    public JsonElement Body { get; init; }
    public string? Tag { get; init; }
    public string[]? Keys { get; init; }
    public Dictionary<string, string?>? Properties { get; init; }
    public int? DelaySeconds { get; init; }
    public string? DeliverAt { get; init; }
    public string? OrderingKey { get; init; }
}

public sealed record SendHalfMessageRequest
{
    public string? ProducerGroup { get; init; }
    public string? TransactionId { get; init; }
    public JsonElement Body { get; init; }
    public string? Tag { get; init; }
    public string[]? Keys { get; init; }
    public Dictionary<string, string?>? Properties { get; init; }
    public int? CheckImmunitySeconds { get; init; }
    public int? DelaySeconds { get; init; }
    public string? DeliverAt { get; init; }
    public string? OrderingKey { get; init; }
}

public sealed record SendMessageResponse(string MessageId, string State);

public sealed record HalfMessageResponse(string MessageId, string TransactionId, string State);

public sealed record EndTransactionResponse(string TransactionId, string MessageId, string State);

public sealed record TransactionView(
    string TransactionId,
    string MessageId,
    string Topic,
    string? ProducerGroup,
    string State,
    int CheckCount,
    string? ResolvedBy,
    DateTime CreatedAt,
    DateTime? ResolvedAt,
    DateTime? LastCheckAt,
    string? LastCheckResult,
    DateTime? NextCheckAt,
    int UnreachableCount,
    int UnknownCount)
{
    /// <summary>Every message of a multi-message transaction (<c>POST /v1/transactions</c>), in order; absent otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<TransactionMessageView>? Messages { get; init; }
}

public sealed record TransactionList(IReadOnlyList<TransactionView> Transactions, string? Next);

public sealed record ProducerGroupRequest
{
    public string? CheckUrl { get; init; }
    public int? CheckTimeoutMs { get; init; }

    /// <summary><c>"auto"</c>: the group gets a signing secret of its own; <c>"none"</c>: removes it; absent: keeps it.</summary>
    public string? Signing { get; init; }

    /// <summary>Check-back calls outstanding at once to this group (1-1000); absent: as it was (at first the broker's default).</summary>
    public int? MaxChecksInFlight { get; init; }

    /// <summary>Check-back calls started per second at most (1-100000, 0 = no limit); absent: as it was (at first the broker's default).</summary>
    public int? MaxChecksPerSecond { get; init; }
}

/// <param name="SigningSecret">Only in the answer that created or rotated the secret; never again.</param>
public sealed record ProducerGroupView(
    string ProducerGroup,
    string? CheckUrl,
    int CheckTimeoutMs,
    string Signing,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? SigningSecret,
    DateTime? SigningSecretCreatedAt,
    string? SigningSecretFingerprint,
    DateTime? PreviousSigningSecretExpiresAt)
{
    /// <summary>In effect: the group's own or the broker's default.</summary>
    public int MaxChecksInFlight { get; init; }

    /// <summary>In effect; null = no rate limit.</summary>
    public int? MaxChecksPerSecond { get; init; }
}

/// <summary>What the broker POSTs to a producer group's checkUrl.</summary>
public sealed record CheckRequestBody(
    string TransactionId,
    string MessageId,
    string Topic,
    string? ProducerGroup,
    string? Tag,
    string[] Keys,
    Dictionary<string, string>? Properties,
    RawJson Body,
    int CheckTimes,
    DateTime BornAt);
