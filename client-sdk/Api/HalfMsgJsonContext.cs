using System.Text.Json;
using System.Text.Json.Serialization;

namespace HalfMsgBroker.Client;

/// <summary>Source-generated System.Text.Json metadata for every wire type of the HalfMsgBroker API.</summary>
[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UseStringEnumConverter = true)]
[JsonSerializable(typeof(SendMessageRequest))]
[JsonSerializable(typeof(SendMessageResult))]
[JsonSerializable(typeof(SendHalfMsgRequest))]
[JsonSerializable(typeof(SendHalfMsgResult))]
[JsonSerializable(typeof(SendTransactionRequest))]
[JsonSerializable(typeof(SendTransactionResult))]
[JsonSerializable(typeof(EndTransactionResult))]
[JsonSerializable(typeof(SendMessageBatchRequest))]
[JsonSerializable(typeof(HalfMsgBatchRequest))]
[JsonSerializable(typeof(BatchSendResult))]
[JsonSerializable(typeof(TransactionIdsRequest))]
[JsonSerializable(typeof(BatchEndResult))]
[JsonSerializable(typeof(TransactionInfo))]
[JsonSerializable(typeof(TransactionList))]
[JsonSerializable(typeof(ProducerGroupRequest))]
[JsonSerializable(typeof(ProducerGroupInfo))]
[JsonSerializable(typeof(SubscriptionRequest))]
[JsonSerializable(typeof(SubscriptionInfo))]
[JsonSerializable(typeof(ConsumerGroupInfo))]
[JsonSerializable(typeof(ReceiveRequest))]
[JsonSerializable(typeof(ReceiveResult))]
[JsonSerializable(typeof(AckRequest))]
[JsonSerializable(typeof(AckResult))]
[JsonSerializable(typeof(NackRequest))]
[JsonSerializable(typeof(ChangeInvisibilityRequest))]
[JsonSerializable(typeof(ChangeInvisibilityResult))]
[JsonSerializable(typeof(DeadLetterList))]
[JsonSerializable(typeof(RedriveRequest))]
[JsonSerializable(typeof(DeleteDeadLettersResult))]
[JsonSerializable(typeof(ReplayRequest))]
[JsonSerializable(typeof(ReplayResult))]
[JsonSerializable(typeof(RetryNowRequest))]
[JsonSerializable(typeof(RetryNowResult))]
[JsonSerializable(typeof(MessageInfo))]
[JsonSerializable(typeof(MessageList))]
[JsonSerializable(typeof(TopicList))]
[JsonSerializable(typeof(TransactionCheckRequest))]
[JsonSerializable(typeof(TransactionCheckResponse))]
[JsonSerializable(typeof(PushRequest))]
[JsonSerializable(typeof(ProblemDetailsData))]
[JsonSerializable(typeof(JsonElement))]
[JsonSerializable(typeof(string))]
internal sealed partial class HalfMsgJsonContext : JsonSerializerContext;
