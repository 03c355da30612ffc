using Refit;

namespace HalfMsgBroker.Client;

/// <summary>
/// Typed client over the whole HalfMsgBroker HTTP API v1, one method per endpoint.
/// Every non-2xx answer throws <see cref="HalfMsgException"/>.
/// Registered by <c>services.AddHalfMsgClient(…)</c>; <see cref="HalfMsgClient"/> adds typed bodies and consume loops on top.
/// </summary>
[Headers("Accept: application/json")]
internal interface IHalfMsgApi
{
    /// <summary><c>POST /v1/topics/{topic}/messages</c>: sends a plain (committed) message.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="request">The message.</param>
    /// <param name="idempotencyKey">Makes a retried send return the first message. When null the SDK adds a fresh one, so its own retries are safe.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The stored message's id.</returns>
    [Post("/v1/topics/{topic}/messages")]
    Task<SendMessageResult> SendMessageAsync(string topic, [Body] SendMessageRequest request, [Header(HalfMsgHeaders.IdempotencyKey)] string? idempotencyKey = null, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/topics/{topic}/half-messages</c>: sends a half (prepared) message, invisible until committed.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="request">The half message. A null <see cref="SendHalfMsgRequest.TransactionId"/> is filled in by the SDK before sending.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The message and transaction ids.</returns>
    [Post("/v1/topics/{topic}/half-messages")]
    Task<SendHalfMsgResult> SendHalfMsgAsync(string topic, [Body] SendHalfMsgRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/transactions</c>: 1–100 half messages, across topics, as one transaction (committed, rolled back and checked as a whole).</summary>
    /// <param name="request">The transaction. With a null <see cref="SendTransactionRequest.TransactionId"/> the broker chooses one, so a retry would be a second transaction: <see cref="TransactionalProducer"/> always sends one.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The transaction id and the message ids.</returns>
    [Post("/v1/transactions")]
    Task<SendTransactionResult> SendTransactionAsync([Body] SendTransactionRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/transactions/{transactionId}/commit</c> (idempotent).</summary>
    /// <param name="transactionId">The transaction.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The end state.</returns>
    [Post("/v1/transactions/{transactionId}/commit")]
    Task<EndTransactionResult> CommitAsync(string transactionId, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/transactions/{transactionId}/rollback</c> (idempotent).</summary>
    /// <param name="transactionId">The transaction.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The end state.</returns>
    [Post("/v1/transactions/{transactionId}/rollback")]
    Task<EndTransactionResult> RollbackAsync(string transactionId, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/messages/batch</c>: up to 100 plain messages (each naming its topic) in one request, stored together or not at all.</summary>
    /// <param name="request">The messages. Items without an idempotency key get a fresh one from the SDK, so its own retries are safe.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per item, in order.</returns>
    [Post("/v1/messages/batch")]
    Task<BatchSendResult> SendMessageBatchAsync([Body] SendMessageBatchRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/half-messages/batch</c>: up to 100 half messages in one request, each its own transaction.</summary>
    /// <param name="request">The half messages. Items without a transaction id get one from the SDK before sending.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per item, in order.</returns>
    [Post("/v1/half-messages/batch")]
    Task<BatchSendResult> SendHalfMsgBatchAsync([Body] HalfMsgBatchRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/transactions/commit</c>: commits up to 1000 transactions, each on its own (idempotent).</summary>
    /// <param name="request">The transaction ids.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per id, in order.</returns>
    [Post("/v1/transactions/commit")]
    Task<BatchEndResult> CommitBatchAsync([Body] TransactionIdsRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/transactions/rollback</c>: rolls back up to 1000 transactions, each on its own (idempotent).</summary>
    /// <param name="request">The transaction ids.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per id, in order.</returns>
    [Post("/v1/transactions/rollback")]
    Task<BatchEndResult> RollbackBatchAsync([Body] TransactionIdsRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>GET /v1/transactions/{transactionId}</c>.</summary>
    /// <param name="transactionId">The transaction.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The transaction with its check-back history.</returns>
    [Get("/v1/transactions/{transactionId}")]
    Task<TransactionInfo> GetTransactionAsync(string transactionId, CancellationToken cancellationToken = default);

    /// <summary><c>GET /v1/transactions</c>: lists transactions, oldest first.</summary>
    /// <param name="state"><c>prepared</c>, <c>committed</c> or <c>rolledBack</c>; null for all.</param>
    /// <param name="producerGroup">Only this producer group.</param>
    /// <param name="topic">Only this topic.</param>
    /// <param name="limit">Page size (broker default 100).</param>
    /// <param name="after">Cursor from the previous page.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One page.</returns>
    [Get("/v1/transactions")]
    Task<TransactionList> ListTransactionsAsync(string? state = null, string? producerGroup = null, string? topic = null, int? limit = null, string? after = null, CancellationToken cancellationToken = default);

    /// <summary><c>PUT /v1/producer-groups/{group}</c>: creates or replaces a producer group and its check URL.</summary>
    /// <param name="group">The group name.</param>
    /// <param name="request">Check URL and timeout.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The stored group.</returns>
    [Put("/v1/producer-groups/{group}")]
    Task<ProducerGroupInfo> PutProducerGroupAsync(string group, [Body] ProducerGroupRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>GET /v1/producer-groups/{group}</c>.</summary>
    /// <param name="group">The group name.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The stored group.</returns>
    [Get("/v1/producer-groups/{group}")]
    Task<ProducerGroupInfo> GetProducerGroupAsync(string group, CancellationToken cancellationToken = default);

    /// <summary><c>PUT /v1/consumer-groups/{group}/subscriptions/{topic}</c>: creates or replaces a subscription.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="request">Tag filter, push settings, attempts.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The stored subscription.</returns>
    [Put("/v1/consumer-groups/{group}/subscriptions/{topic}")]
    Task<SubscriptionInfo> PutSubscriptionAsync(string group, string topic, [Body] SubscriptionRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>GET /v1/consumer-groups/{group}</c>: the group's subscriptions with counts.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The group.</returns>
    [Get("/v1/consumer-groups/{group}")]
    Task<ConsumerGroupInfo> GetConsumerGroupAsync(string group, CancellationToken cancellationToken = default);

    /// <summary><c>DELETE /v1/consumer-groups/{group}/subscriptions/{topic}</c>.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the subscription is removed.</returns>
    [Delete("/v1/consumer-groups/{group}/subscriptions/{topic}")]
    Task DeleteSubscriptionAsync(string group, string topic, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/consumer-groups/{group}/topics/{topic}/receive</c>: long-poll for messages. Never retried automatically.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="request">Batch size, wait and invisibility.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The received messages (possibly none).</returns>
    [Post("/v1/consumer-groups/{group}/topics/{topic}/receive")]
    Task<ReceiveResult> ReceiveAsync(string group, string topic, [Body] ReceiveRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/consumer-groups/{group}/ack</c>.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="request">The receipt handles.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many were acked, and which handles were stale.</returns>
    [Post("/v1/consumer-groups/{group}/ack")]
    Task<AckResult> AckAsync(string group, [Body] AckRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/consumer-groups/{group}/nack</c>: gives a message back for redelivery.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="request">The handle and the delay.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the broker took the nack.</returns>
    [Post("/v1/consumer-groups/{group}/nack")]
    Task NackAsync(string group, [Body] NackRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/consumer-groups/{group}/change-invisibility</c>: extends (or shortens) a received message's invisibility.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="request">The handle and the new invisibility.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>When the message becomes visible again.</returns>
    [Post("/v1/consumer-groups/{group}/change-invisibility")]
    Task<ChangeInvisibilityResult> ChangeInvisibilityAsync(string group, [Body] ChangeInvisibilityRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>GET /v1/consumer-groups/{group}/dead-letters</c>.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="topic">Only this topic.</param>
    /// <param name="limit">At most this many.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The dead letters.</returns>
    [Get("/v1/consumer-groups/{group}/dead-letters")]
    Task<DeadLetterList> GetDeadLettersAsync(string group, string? topic = null, int? limit = null, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/consumer-groups/{group}/dead-letters/redrive</c>: puts dead letters back for delivery.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="request">The message ids, or null ids for all.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when they are back.</returns>
    [Post("/v1/consumer-groups/{group}/dead-letters/redrive")]
    Task RedriveDeadLettersAsync(string group, [Body] RedriveRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>DELETE /v1/consumer-groups/{group}/dead-letters/{messageId}</c>: removes one dead letter.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="messageId">The message id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when it is removed.</returns>
    [Delete("/v1/consumer-groups/{group}/dead-letters/{messageId}")]
    Task DeleteDeadLetterAsync(string group, string messageId, CancellationToken cancellationToken = default);

    /// <summary><c>DELETE /v1/consumer-groups/{group}/dead-letters</c>: removes the group's (or one topic's) dead letters.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="topic">Only this topic.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many were removed.</returns>
    [Delete("/v1/consumer-groups/{group}/dead-letters")]
    Task<DeleteDeadLettersResult> DeleteDeadLettersAsync(string group, string? topic = null, CancellationToken cancellationToken = default);

    /// <summary><c>GET /v1/messages/{messageId}</c>: a message with its per-group delivery state.</summary>
    /// <param name="messageId">The message id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The message.</returns>
    [Get("/v1/messages/{messageId}")]
    Task<MessageInfo> GetMessageAsync(string messageId, CancellationToken cancellationToken = default);

    /// <summary><c>GET /v1/messages?topic=&amp;key=</c>: the messages with a key.</summary>
    /// <param name="key">The business key.</param>
    /// <param name="topic">Only this topic.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The messages.</returns>
    [Get("/v1/messages")]
    Task<MessageList> FindMessagesAsync(string? key = null, string? topic = null, CancellationToken cancellationToken = default);

    /// <summary><c>GET /v1/topics</c>: topics with message counts.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The topics.</returns>
    [Get("/v1/topics")]
    Task<TopicList> GetTopicsAsync(CancellationToken cancellationToken = default);

    /// <summary><c>GET /health/live</c>. The caller disposes the response; a non-2xx answer does not throw.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The raw response.</returns>
    [Get("/health/live")]
    Task<HttpResponseMessage> GetLivenessAsync(CancellationToken cancellationToken = default);

    /// <summary><c>GET /health/ready</c>. The caller disposes the response; a non-2xx answer does not throw.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The raw response.</returns>
    [Get("/health/ready")]
    Task<HttpResponseMessage> GetReadinessAsync(CancellationToken cancellationToken = default);

    /// <summary><c>GET /openapi/v1.json</c>: the broker's OpenAPI document.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The document as JSON text.</returns>
    [Get("/openapi/v1.json")]
    Task<string> GetOpenApiDocumentAsync(CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/consumer-groups/{group}/subscriptions/{topic}/replay</c>: delivers again what was committed since a time.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="topic">The subscribed topic.</param>
    /// <param name="request">The time to replay from.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many deliveries were scheduled again.</returns>
    [Post("/v1/consumer-groups/{group}/subscriptions/{topic}/replay")]
    Task<ReplayResult> ReplayAsync(string group, string topic, [Body] ReplayRequest request, CancellationToken cancellationToken = default);

    /// <summary><c>POST /v1/consumer-groups/{group}/subscriptions/{topic}/retry-now</c>: ends the retry backoffs of a subscription's deliveries.</summary>
    /// <param name="group">The consumer group.</param>
    /// <param name="topic">The subscribed topic.</param>
    /// <param name="request">The message ids, or null ids for all.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many retries were brought forward.</returns>
    [Post("/v1/consumer-groups/{group}/subscriptions/{topic}/retry-now")]
    Task<RetryNowResult> RetryNowAsync(string group, string topic, [Body] RetryNowRequest request, CancellationToken cancellationToken = default);
}
