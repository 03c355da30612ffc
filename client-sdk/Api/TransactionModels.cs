using System.Text.Json;
using System.Text.Json.Serialization;

namespace HalfMsgBroker.Client;

/// <summary>One message of a multi-message transaction (<c>POST /v1/transactions</c>).</summary>
/// <param name="Topic">The topic; the messages of one transaction may go to different topics.</param>
/// <param name="Body">The message body: any JSON value (see <see cref="HalfMsgClient.ToJson{T}"/>).</param>
/// <param name="Tag">Optional tag.</param>
/// <param name="Keys">Optional business keys.</param>
/// <param name="Properties">Optional string properties.</param>
/// <param name="Delay">Optional delay (0 to 24 h, whole seconds: a fraction rounds up), counted from the send as for a half message: once committed, the message is delivered no earlier.</param>
/// <param name="OrderingKey">Messages of the topic with the same key reach each consumer group one at a time, in commit order; a transaction's messages commit in the order given (1–128 chars).</param>
public sealed record TransactionMessage(
    string Topic,
    JsonElement Body,
    string? Tag = null,
    IReadOnlyList<string>? Keys = null,
    IReadOnlyDictionary<string, string>? Properties = null,
    [property: JsonPropertyName("delaySeconds"), JsonConverter(typeof(NullableSecondsJsonConverter))] TimeSpan? Delay = null,
    string? OrderingKey = null);

/// <summary>Body of <c>POST /v1/transactions</c>: 1–100 messages prepared, committed and checked as one transaction.</summary>
/// <param name="ProducerGroup">The producer group whose check URL resolves the transaction.</param>
/// <param name="Messages">The messages, in order; the first one is the one the check-back describes.</param>
/// <param name="TransactionId">Unique transaction id; sending the same transaction again returns it. When null the SDK generates one before sending.</param>
/// <param name="CheckImmunitySeconds">Seconds before the first check-back (overrides <c>Broker:Transactions:CheckAfter</c>).</param>
internal sealed record SendTransactionRequest(
    string ProducerGroup,
    IReadOnlyList<TransactionMessage> Messages,
    string? TransactionId = null,
    int? CheckImmunitySeconds = null);

/// <summary>A stored message of a multi-message transaction.</summary>
/// <param name="MessageId">The broker's message id.</param>
/// <param name="Topic">Its topic.</param>
public sealed record TransactionMessageRef(string MessageId, string Topic);

/// <summary>Answer to <c>POST /v1/transactions</c>.</summary>
/// <param name="TransactionId">The transaction id.</param>
/// <param name="State">Prepared (or how a replayed transaction ended since).</param>
/// <param name="Messages">The stored messages, in the order sent.</param>
public sealed record SendTransactionResult(string TransactionId, MessageState State, IReadOnlyList<TransactionMessageRef> Messages);
