using System.Text.Json;
using System.Text.Json.Serialization;

namespace HalfMsgBroker.Contracts;

/// <summary>Source-generated serialization for every type on the wire (no reflection on the hot path).</summary>
[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    UseStringEnumConverter = true)]
[JsonSerializable(typeof(JsonElement))]
[JsonSerializable(typeof(SendMessageRequest))]
[JsonSerializable(typeof(SendHalfMessageRequest))]
[JsonSerializable(typeof(SendMessageResponse))]
[JsonSerializable(typeof(HalfMessageResponse))]
[JsonSerializable(typeof(EndTransactionResponse))]
[JsonSerializable(typeof(SendMessageBatchRequest))]
[JsonSerializable(typeof(SendHalfMessageBatchRequest))]
[JsonSerializable(typeof(SendBatchResponse))]
[JsonSerializable(typeof(EndTransactionBatchRequest))]
[JsonSerializable(typeof(EndTransactionBatchResponse))]
[JsonSerializable(typeof(TransactionView))]
[JsonSerializable(typeof(SendTransactionRequest))]
[JsonSerializable(typeof(SendTransactionResponse))]
[JsonSerializable(typeof(TransactionList))]
[JsonSerializable(typeof(ProducerGroupRequest))]
[JsonSerializable(typeof(ProducerGroupView))]
[JsonSerializable(typeof(CheckRequestBody))]
[JsonSerializable(typeof(SubscriptionRequest))]
[JsonSerializable(typeof(SubscriptionView))]
[JsonSerializable(typeof(ConsumerGroupView))]
[JsonSerializable(typeof(ReceiveRequest))]
[JsonSerializable(typeof(ReceiveResponse))]
[JsonSerializable(typeof(AckRequest))]
[JsonSerializable(typeof(AckResponse))]
[JsonSerializable(typeof(NackRequest))]
[JsonSerializable(typeof(NackResponse))]
[JsonSerializable(typeof(ChangeInvisibilityRequest))]
[JsonSerializable(typeof(ChangeInvisibilityResponse))]
[JsonSerializable(typeof(DeadLetterList))]
[JsonSerializable(typeof(RedriveRequest))]
[JsonSerializable(typeof(RedriveResponse))]
[JsonSerializable(typeof(DeleteResponse))]
[JsonSerializable(typeof(PushBody))]
[JsonSerializable(typeof(MessageView))]
[JsonSerializable(typeof(MessageList))]
[JsonSerializable(typeof(TopicList))]
[JsonSerializable(typeof(HealthView))]
[JsonSerializable(typeof(ApiKeyRequest))]
[JsonSerializable(typeof(ApiKeyView))]
[JsonSerializable(typeof(ApiKeyList))]
[JsonSerializable(typeof(AuditList))]
public sealed partial class BrokerJsonContext : JsonSerializerContext;
