using System.Text.Json;

namespace HalfMsgBroker.Contracts;

/// <summary><c>POST /v1/transactions</c>: several half messages, across topics, in one transaction.</summary>
public sealed record SendTransactionRequest
{
    public string? ProducerGroup { get; init; }
    public string? TransactionId { get; init; }
    public int? CheckImmunitySeconds { get; init; }
    public List<TransactionMessageItem?>? Messages { get; init; }
}

/// <summary>One message of a transaction: a half message's fields, with its topic.</summary>
public sealed record TransactionMessageItem
{
    public string? Topic { get; init; }

    /// <summary>Not needed: a transaction has one producer group. When given, it must be the transaction's.</summary>
    public string? ProducerGroup { get; init; }

    public JsonElement Body { get; init; }
    public string? Tag { get; init; }
    public string[]? Keys { get; init; }
    public Dictionary<string, string?>? Properties { get; init; }
    public int? DelaySeconds { get; init; }
    public string? DeliverAt { get; init; }
    public string? OrderingKey { get; init; }
}

public sealed record TransactionMessageRef(string MessageId, string Topic);

public sealed record SendTransactionResponse(string TransactionId, string State, IReadOnlyList<TransactionMessageRef> Messages);

/// <summary>A message of a multi-message transaction, in the transaction view.</summary>
public sealed record TransactionMessageView(string MessageId, string Topic, string State);
