using System.Text.Json;
using System.Text.Json.Serialization;

namespace HalfMsgBroker.Contracts;

/// <summary><c>POST /v1/messages/batch</c>: plain sends, each naming its topic.</summary>
public sealed record SendMessageBatchRequest
{
    public List<SendMessageBatchItem?>? Items { get; init; }
}

/// <summary>A plain send's fields plus its topic and (the single send's header) its Idempotency-Key.</summary>
public sealed record SendMessageBatchItem
{
    public string? Topic { get; init; }
    public string? IdempotencyKey { get; init; }
    public JsonElement Body { get; init; }
    public string? Tag { get; init; }
    public string[]? Keys { get; init; }
    public Dictionary<string, string?>? Properties { get; init; }
    public int? DelaySeconds { get; init; }
    public string? DeliverAt { get; init; }
    public string? OrderingKey { get; init; }
}

/// <summary><c>POST /v1/half-messages/batch</c>: half messages, each its own transaction.</summary>
public sealed record SendHalfMessageBatchRequest
{
    public List<SendHalfMessageBatchItem?>? Items { get; init; }
}

public sealed record SendHalfMessageBatchItem
{
    public string? Topic { get; init; }
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

/// <summary>
/// One item's outcome, in the order of the request. <c>status</c> is <c>created</c>, <c>replayed</c>
/// or <c>conflict</c>; a conflict carries the problem <c>code</c> and <c>detail</c> the single endpoint
/// would have answered with 409, and no <c>messageId</c> or <c>state</c> when the other message may be
/// another producer's.
/// </summary>
public sealed record SendBatchResult(
    string? MessageId,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? TransactionId,
    string? State,
    string Status,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Code,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Detail);

public sealed record SendBatchResponse(IReadOnlyList<SendBatchResult> Results);

/// <summary><c>POST /v1/transactions/commit</c> and <c>/rollback</c>.</summary>
public sealed record EndTransactionBatchRequest
{
    public List<string?>? TransactionIds { get; init; }
}

/// <summary>
/// One transaction's outcome: <c>status</c> is <c>committed</c> or <c>rolledBack</c> (ended now or
/// before, as the single endpoint's 200), <c>notFound</c> (also another producer group's), or
/// <c>conflict</c> with the <c>state</c> it already has.
/// </summary>
public sealed record EndTransactionBatchResult(
    string TransactionId,
    string? MessageId,
    string? State,
    string Status,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Code,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Detail);

public sealed record EndTransactionBatchResponse(IReadOnlyList<EndTransactionBatchResult> Results);
