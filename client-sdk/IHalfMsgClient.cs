namespace HalfMsgBroker.Client;

/// <summary>
/// The HalfMsgBroker client: sends, transactions, pull receives and the broker's administration calls.
/// <see cref="HalfMsgClient"/> implements it; <c>services.AddHalfMsgClient(…)</c> registers both as
/// singletons. Mock this interface in your tests.
/// </summary>
/// <remarks>
/// Every failed call throws <see cref="HalfMsgException"/> (a problem answer, or status 0 when no answer
/// came). Arguments outside the broker's limits (<see cref="HalfMsgLimits"/>) throw
/// <see cref="ArgumentOutOfRangeException"/> before anything is sent. Durations are <see cref="TimeSpan"/>s.
/// </remarks>
public interface IHalfMsgClient
{
    /// <summary>Sends a plain message; retried safely with an idempotency key.</summary>
    /// <typeparam name="T">The body type (serialized with <see cref="HalfMsgClientOptions.JsonSerializerOptions"/>).</typeparam>
    /// <param name="topic">The topic.</param>
    /// <param name="body">The body.</param>
    /// <param name="options">Tag, keys, delay, idempotency key.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The message id.</returns>
    Task<SendMessageResult> SendAsync<T>(string topic, T body, MessageOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Sends a half (prepared) message. Prefer <see cref="ITransactionalProducer"/>, which also ends it.</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <param name="topic">The topic.</param>
    /// <param name="producerGroup">The producer group that answers check-backs.</param>
    /// <param name="body">The body.</param>
    /// <param name="options">Transaction id, tag, keys, check immunity.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The message and transaction ids.</returns>
    Task<SendHalfMsgResult> SendHalfAsync<T>(string topic, string producerGroup, T body, HalfMsgSendOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Prepares several messages, across topics, as one transaction (<c>POST /v1/transactions</c>): one
    /// commit or rollback ends them all, and one check-back (about the first message) resolves them.
    /// Prefer <see cref="ITransactionalProducer"/>, which also ends it.
    /// </summary>
    /// <param name="producerGroup">The producer group that answers check-backs.</param>
    /// <param name="messages">1 to 100 messages (<see cref="HalfMsgClient.ToJson{T}"/> makes a body).</param>
    /// <param name="transactionId">The transaction id; generated when null (<see cref="TransactionIds.New"/>).</param>
    /// <param name="checkImmunity">Time before the first check-back (0 to 24 h, whole seconds); null for the broker's <c>CheckAfter</c>.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The transaction id and each message's id, in order.</returns>
    Task<SendTransactionResult> SendTransactionAsync(
        string producerGroup,
        IReadOnlyList<TransactionMessage> messages,
        string? transactionId = null,
        TimeSpan? checkImmunity = null,
        CancellationToken cancellationToken = default);

    /// <summary>Commits a transaction (idempotent).</summary>
    /// <param name="transactionId">The transaction.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The end state.</returns>
    Task<EndTransactionResult> CommitAsync(string transactionId, CancellationToken cancellationToken = default);

    /// <summary>Rolls a transaction back (idempotent).</summary>
    /// <param name="transactionId">The transaction.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The end state.</returns>
    Task<EndTransactionResult> RollbackAsync(string transactionId, CancellationToken cancellationToken = default);

    /// <summary>Sends 1 to 100 plain messages in one request (stored together or not at all); retried safely.</summary>
    /// <param name="items">The messages; an item without an idempotency key gets a fresh one.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per item, in order: created, replayed or conflict.</returns>
    Task<BatchSendResult> SendBatchAsync(IEnumerable<SendMessageBatchItem> items, CancellationToken cancellationToken = default);

    /// <summary>Sends 1 to 100 half messages in one request, each its own transaction.</summary>
    /// <param name="items">The half messages; an item without a transaction id gets a new one.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per item, in order, with its transaction id.</returns>
    Task<BatchSendResult> SendHalfBatchAsync(IEnumerable<HalfMsgBatchItem> items, CancellationToken cancellationToken = default);

    /// <summary>Commits 1 to 1000 transactions in one request, each on its own (idempotent).</summary>
    /// <param name="transactionIds">The transactions.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per id, in order.</returns>
    Task<BatchEndResult> CommitBatchAsync(IEnumerable<string> transactionIds, CancellationToken cancellationToken = default);

    /// <summary>Rolls back 1 to 1000 transactions in one request, each on its own (idempotent).</summary>
    /// <param name="transactionIds">The transactions.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per id, in order.</returns>
    Task<BatchEndResult> RollbackBatchAsync(IEnumerable<string> transactionIds, CancellationToken cancellationToken = default);

    /// <summary>One long-poll receive (never retried automatically).</summary>
    /// <param name="consumerGroup">The consumer group (subscribed to the topic without push).</param>
    /// <param name="topic">The topic.</param>
    /// <param name="options">Batch size, wait, invisibility.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The messages (possibly none), each with ack, nack and extend.</returns>
    Task<IReadOnlyList<ReceivedMessage>> ReceiveAsync(string consumerGroup, string topic, ReceiveOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Receives messages as an endless stream (long polling). Transient failures are retried with a growing
    /// delay; the stream ends only through <paramref name="cancellationToken"/> or a non-transient error.
    /// </summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="options">Batch size, wait, invisibility.</param>
    /// <param name="cancellationToken">Stops the stream.</param>
    /// <returns>The messages as they arrive; ack, nack or extend each.</returns>
    IAsyncEnumerable<ReceivedMessage> ReceiveAllAsync(string consumerGroup, string topic, ReceiveOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Acks 1 to 1000 received messages by receipt handle (not retried automatically).</summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="receiptHandles">The handles.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many were acked, and which handles were stale.</returns>
    Task<AckResult> AckAsync(string consumerGroup, IEnumerable<string> receiptHandles, CancellationToken cancellationToken = default);

    /// <summary>Gives a received message back for redelivery (not retried automatically).</summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="receiptHandle">The handle.</param>
    /// <param name="retryAfter">Delay before redelivery (0 to 12 h, whole seconds); null for the broker's next backoff level.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the broker took it back.</returns>
    Task NackAsync(string consumerGroup, string receiptHandle, TimeSpan? retryAfter = null, CancellationToken cancellationToken = default);

    /// <summary>Sets a received message's invisibility, counted from now (not retried automatically).</summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="receiptHandle">The handle.</param>
    /// <param name="invisibleFor">1 s to 12 h, whole seconds.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The handle to use from now on, and when the message becomes visible again.</returns>
    Task<ChangeInvisibilityResult> ChangeInvisibilityAsync(string consumerGroup, string receiptHandle, TimeSpan invisibleFor, CancellationToken cancellationToken = default);

    /// <summary>A transaction with its check-back history.</summary>
    /// <param name="transactionId">The transaction.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The transaction.</returns>
    Task<TransactionInfo> GetTransactionAsync(string transactionId, CancellationToken cancellationToken = default);

    /// <summary>One page of transactions, oldest first.</summary>
    /// <param name="query">Filters and paging; null for the first page of all.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The page, with the cursor of the next.</returns>
    Task<TransactionList> ListTransactionsAsync(TransactionQuery? query = null, CancellationToken cancellationToken = default);

    /// <summary>Creates or replaces a producer group and its check URL.</summary>
    /// <param name="producerGroup">The group name.</param>
    /// <param name="request">Check URL and timeout (100 ms to 60 s).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The stored group.</returns>
    Task<ProducerGroupInfo> PutProducerGroupAsync(string producerGroup, ProducerGroupRequest request, CancellationToken cancellationToken = default);

    /// <summary>A producer group.</summary>
    /// <param name="producerGroup">The group name.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The stored group.</returns>
    Task<ProducerGroupInfo> GetProducerGroupAsync(string producerGroup, CancellationToken cancellationToken = default);

    /// <summary>Creates or replaces a subscription (pull when <see cref="SubscriptionRequest.Push"/> is null).</summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="request">Tag filter, push settings, attempts.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The stored subscription.</returns>
    Task<SubscriptionInfo> PutSubscriptionAsync(string consumerGroup, string topic, SubscriptionRequest request, CancellationToken cancellationToken = default);

    /// <summary>A consumer group's subscriptions with their message counts.</summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The group.</returns>
    Task<ConsumerGroupInfo> GetConsumerGroupAsync(string consumerGroup, CancellationToken cancellationToken = default);

    /// <summary>Removes a subscription.</summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when it is removed.</returns>
    Task DeleteSubscriptionAsync(string consumerGroup, string topic, CancellationToken cancellationToken = default);

    /// <summary>A consumer group's dead letters.</summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">Only this topic.</param>
    /// <param name="limit">At most this many (1 to 1000); null for the broker's 100.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The dead letters.</returns>
    Task<DeadLetterList> GetDeadLettersAsync(string consumerGroup, string? topic = null, int? limit = null, CancellationToken cancellationToken = default);

    /// <summary>Puts dead letters back for delivery (not retried automatically).</summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="messageIds">The message ids; null for all of the group's.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when they are back.</returns>
    Task RedriveDeadLettersAsync(string consumerGroup, IEnumerable<string>? messageIds = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Delivers again the group's messages on <paramref name="topic"/> committed at or after <paramref name="from"/>
    /// that retention still holds (like RocketMQ's offset reset). Acked, discarded and dead-lettered deliveries
    /// start over; pending ones are not doubled. Stored before it answers.
    /// </summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The subscribed topic.</param>
    /// <param name="from">The earliest commit time to deliver again; not in the future.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many deliveries were scheduled again.</returns>
    Task<int> ReplayAsync(string consumerGroup, string topic, DateTimeOffset from, CancellationToken cancellationToken = default);

    /// <summary>Makes the subscription's deliveries that wait for a retry backoff (or only those of <paramref name="messageIds"/>) due now.</summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The subscribed topic.</param>
    /// <param name="messageIds">Only these messages (1 to 1000); null for all.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many retries were brought forward.</returns>
    Task<int> RetryNowAsync(string consumerGroup, string topic, IEnumerable<string>? messageIds = null, CancellationToken cancellationToken = default);

    /// <summary>Removes one dead letter.</summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="messageId">The message id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when it is removed.</returns>
    Task DeleteDeadLetterAsync(string consumerGroup, string messageId, CancellationToken cancellationToken = default);

    /// <summary>Removes a consumer group's (or one topic's) dead letters.</summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">Only this topic.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many were removed.</returns>
    Task<DeleteDeadLettersResult> DeleteDeadLettersAsync(string consumerGroup, string? topic = null, CancellationToken cancellationToken = default);

    /// <summary>A message with its per-group delivery state.</summary>
    /// <param name="messageId">The message id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The message.</returns>
    Task<MessageInfo> GetMessageAsync(string messageId, CancellationToken cancellationToken = default);

    /// <summary>The messages with a business key.</summary>
    /// <param name="key">The key.</param>
    /// <param name="topic">Only this topic.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The messages.</returns>
    Task<MessageList> FindMessagesAsync(string key, string? topic = null, CancellationToken cancellationToken = default);

    /// <summary>The broker's topics with message counts.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The topics.</returns>
    Task<TopicList> GetTopicsAsync(CancellationToken cancellationToken = default);
}
