using System.Text.Json;
using System.Text.Json.Serialization;

namespace HalfMsgBroker.Client;

/// <summary>State of a message as the broker stores it.</summary>
public enum MessageState
{
    /// <summary>A half message: stored, invisible to consumers, waiting for commit or rollback.</summary>
    [JsonStringEnumMemberName("prepared")] Prepared,
    /// <summary>Committed and deliverable.</summary>
    [JsonStringEnumMemberName("committed")] Committed,
    /// <summary>Rolled back; never delivered.</summary>
    [JsonStringEnumMemberName("rolledBack")] RolledBack,
}

/// <summary>Who resolved a transaction.</summary>
public enum TransactionResolver
{
    /// <summary>The producer called commit or rollback.</summary>
    [JsonStringEnumMemberName("producer")] Producer,
    /// <summary>A check-back answer resolved it.</summary>
    [JsonStringEnumMemberName("check")] Check,
    /// <summary>The check-back gave up after <c>MaxChecks</c> unknown answers and rolled it back.</summary>
    [JsonStringEnumMemberName("checkExhausted")] CheckExhausted,
}

/// <summary>What happens to a message that used up <c>maxAttempts</c>.</summary>
public enum ExhaustedAction
{
    /// <summary>Keep it as a dead letter (default).</summary>
    [JsonStringEnumMemberName("deadLetter")] DeadLetter,
    /// <summary>Drop it (best-effort notification).</summary>
    [JsonStringEnumMemberName("discard")] Discard,
}

/// <summary>State of one message for one consumer group.</summary>
public enum DeliveryState
{
    /// <summary>Waiting to be delivered.</summary>
    [JsonStringEnumMemberName("pending")] Pending,
    /// <summary>Received and not yet acked.</summary>
    [JsonStringEnumMemberName("inFlight")] InFlight,
    /// <summary>Failed at least once, waiting for its next attempt.</summary>
    [JsonStringEnumMemberName("retrying")] Retrying,
    /// <summary>Acked.</summary>
    [JsonStringEnumMemberName("acked")] Acked,
    /// <summary>Moved to the dead letters.</summary>
    [JsonStringEnumMemberName("deadLettered")] DeadLettered,
    /// <summary>Given up (discarded).</summary>
    [JsonStringEnumMemberName("discarded")] Discarded,
}

/// <summary>
/// The outcome of a local transaction, as the producer reports it and as a check-back answers
/// (RocketMQ's <c>COMMIT_MESSAGE</c>, <c>ROLLBACK_MESSAGE</c>, <c>UNKNOW</c>).
/// </summary>
public enum LocalTransactionState
{
    /// <summary>The local transaction is not (yet) known to have committed: ask again later.</summary>
    [JsonStringEnumMemberName("unknown")] Unknown,
    /// <summary>The local transaction committed: deliver the message.</summary>
    [JsonStringEnumMemberName("commit")] Commit,
    /// <summary>The local transaction rolled back: drop the message.</summary>
    [JsonStringEnumMemberName("rollback")] Rollback,
}

/// <summary>Body of <c>POST /v1/topics/{topic}/messages</c>.</summary>
/// <param name="Body">The message body: any JSON value.</param>
/// <param name="Tag">Optional tag (1–127 chars, no <c>|</c> or whitespace).</param>
/// <param name="Keys">Optional business keys (up to 32).</param>
/// <param name="Properties">Optional string properties (up to 64).</param>
/// <param name="DelaySeconds">Defers delivery by this many seconds (0–86400).</param>
/// <param name="DeliverAt">Defers delivery until this time.</param>
/// <param name="OrderingKey">Messages of the topic with the same key reach each consumer group one at a time, in commit order (1–128 chars).</param>
internal sealed record SendMessageRequest(
    JsonElement Body,
    string? Tag = null,
    IReadOnlyList<string>? Keys = null,
    IReadOnlyDictionary<string, string>? Properties = null,
    int? DelaySeconds = null,
    DateTimeOffset? DeliverAt = null,
    string? OrderingKey = null);

/// <summary>Answer to a plain send.</summary>
/// <param name="MessageId">The broker's id of the stored message.</param>
/// <param name="State">Always <see cref="MessageState.Committed"/> for a plain send.</param>
public sealed record SendMessageResult(string MessageId, MessageState State);

/// <summary>Body of <c>POST /v1/topics/{topic}/half-messages</c>.</summary>
/// <param name="ProducerGroup">The producer group whose check URL resolves this transaction.</param>
/// <param name="Body">The message body: any JSON value.</param>
/// <param name="TransactionId">Unique transaction id. When null the SDK generates one before sending, so the send is safe to retry.</param>
/// <param name="Tag">Optional tag.</param>
/// <param name="Keys">Optional business keys.</param>
/// <param name="Properties">Optional string properties.</param>
/// <param name="CheckImmunitySeconds">Seconds before the first check-back (overrides <c>Broker:Transactions:CheckAfter</c>).</param>
/// <param name="OrderingKey">Messages of the topic with the same key reach each consumer group one at a time, in commit order (a half message counts from its commit) (1–128 chars).</param>
internal sealed record SendHalfMsgRequest(
    string ProducerGroup,
    JsonElement Body,
    string? TransactionId = null,
    string? Tag = null,
    IReadOnlyList<string>? Keys = null,
    IReadOnlyDictionary<string, string>? Properties = null,
    int? CheckImmunitySeconds = null,
    string? OrderingKey = null);

/// <summary>Answer to a half-message send.</summary>
/// <param name="MessageId">The broker's message id.</param>
/// <param name="TransactionId">The transaction id (the one sent, or the broker's).</param>
/// <param name="State">Normally <see cref="MessageState.Prepared"/>; a repeated send of an ended transaction shows its end state.</param>
public sealed record SendHalfMsgResult(string MessageId, string TransactionId, MessageState State);

/// <summary>Answer to a commit or rollback.</summary>
/// <param name="TransactionId">The transaction id.</param>
/// <param name="MessageId">The half message's id.</param>
/// <param name="State">The end state.</param>
public sealed record EndTransactionResult(string TransactionId, string MessageId, MessageState State);

/// <summary>One plain message of <c>POST /v1/messages/batch</c>: a plain send's fields plus its topic.</summary>
/// <param name="Topic">The topic.</param>
/// <param name="Body">The message body: any JSON value.</param>
/// <param name="Tag">Optional tag.</param>
/// <param name="Keys">Optional business keys.</param>
/// <param name="Properties">Optional string properties.</param>
/// <param name="Delay">Defers delivery (0 to 24 h, whole seconds: a fraction rounds up).</param>
/// <param name="DeliverAt">Defers delivery until this time (at most 24 h ahead).</param>
/// <param name="IdempotencyKey">The single send's <c>Idempotency-Key</c>. When null the SDK adds a fresh one, so its own retries are safe.</param>
/// <param name="OrderingKey">Messages of the topic with the same key reach each consumer group one at a time, in commit order (1–128 chars).</param>
public sealed record SendMessageBatchItem(
    string Topic,
    JsonElement Body,
    string? Tag = null,
    IReadOnlyList<string>? Keys = null,
    IReadOnlyDictionary<string, string>? Properties = null,
    [property: JsonPropertyName("delaySeconds"), JsonConverter(typeof(NullableSecondsJsonConverter))] TimeSpan? Delay = null,
    DateTimeOffset? DeliverAt = null,
    string? IdempotencyKey = null,
    string? OrderingKey = null);

/// <summary>Body of <c>POST /v1/messages/batch</c> (1–100 items).</summary>
/// <param name="Items">The messages, stored in this order.</param>
internal sealed record SendMessageBatchRequest(IReadOnlyList<SendMessageBatchItem> Items);

/// <summary>One half message of <c>POST /v1/half-messages/batch</c>: its own transaction.</summary>
/// <param name="Topic">The topic.</param>
/// <param name="ProducerGroup">The producer group whose check URL resolves this transaction.</param>
/// <param name="Body">The message body: any JSON value.</param>
/// <param name="TransactionId">Unique transaction id. When null the SDK generates one before sending.</param>
/// <param name="Tag">Optional tag.</param>
/// <param name="Keys">Optional business keys.</param>
/// <param name="Properties">Optional string properties.</param>
/// <param name="CheckImmunity">Time before the first check-back (0 to 24 h, whole seconds); null for the broker's <c>CheckAfter</c>.</param>
/// <param name="OrderingKey">Messages of the topic with the same key reach each consumer group one at a time, in commit order (1–128 chars).</param>
public sealed record HalfMsgBatchItem(
    string Topic,
    string ProducerGroup,
    JsonElement Body,
    string? TransactionId = null,
    string? Tag = null,
    IReadOnlyList<string>? Keys = null,
    IReadOnlyDictionary<string, string>? Properties = null,
    [property: JsonPropertyName("checkImmunitySeconds"), JsonConverter(typeof(NullableSecondsJsonConverter))] TimeSpan? CheckImmunity = null,
    string? OrderingKey = null);

/// <summary>Body of <c>POST /v1/half-messages/batch</c> (1–100 items).</summary>
/// <param name="Items">The half messages, stored in this order.</param>
internal sealed record HalfMsgBatchRequest(IReadOnlyList<HalfMsgBatchItem> Items);

/// <summary>What happened to one item of a batch send.</summary>
public enum BatchSendStatus
{
    /// <summary>Stored now (the single send's 201).</summary>
    [JsonStringEnumMemberName("created")] Created,
    /// <summary>Already stored with the same key and body (the single send's 200).</summary>
    [JsonStringEnumMemberName("replayed")] Replayed,
    /// <summary>The key is taken by a different message (the single send's 409): see Code and Detail.</summary>
    [JsonStringEnumMemberName("conflict")] Conflict,
}

/// <summary>One item's outcome in a batch send's answer.</summary>
/// <param name="MessageId">The message id; null for a conflict.</param>
/// <param name="TransactionId">The transaction id (half messages only).</param>
/// <param name="State">The message's state; null for a conflict.</param>
/// <param name="Status">Created, replayed or conflict.</param>
/// <param name="Code">For a conflict: <c>idempotency-conflict</c> or <c>transaction-conflict</c>.</param>
/// <param name="Detail">For a conflict: what to do about it.</param>
public sealed record BatchSendItemResult(string? MessageId, string? TransactionId, MessageState? State, BatchSendStatus Status, string? Code = null, string? Detail = null);

/// <summary>Answer to a batch send: one result per item, in request order.</summary>
/// <param name="Results">The results.</param>
public sealed record BatchSendResult(IReadOnlyList<BatchSendItemResult> Results);

/// <summary>Body of <c>POST /v1/transactions/commit</c> and <c>/rollback</c> (1–1000 ids).</summary>
/// <param name="TransactionIds">The transactions to end, each on its own.</param>
internal sealed record TransactionIdsRequest(IReadOnlyList<string> TransactionIds);

/// <summary>What happened to one transaction of a batch commit or rollback.</summary>
public enum BatchEndStatus
{
    /// <summary>Committed, now or before.</summary>
    [JsonStringEnumMemberName("committed")] Committed,
    /// <summary>Rolled back, now or before.</summary>
    [JsonStringEnumMemberName("rolledBack")] RolledBack,
    /// <summary>No such transaction (or one of a producer group the key does not cover).</summary>
    [JsonStringEnumMemberName("notFound")] NotFound,
    /// <summary>Already ended the other way; State says how.</summary>
    [JsonStringEnumMemberName("conflict")] Conflict,
}

/// <summary>One transaction's outcome in a batch commit or rollback.</summary>
/// <param name="TransactionId">The transaction id.</param>
/// <param name="MessageId">The half message's id; null when not found.</param>
/// <param name="State">The transaction's state; null when not found.</param>
/// <param name="Status">Committed, rolled back, not found or conflict.</param>
/// <param name="Code">For not found and conflict: the single endpoint's problem code.</param>
/// <param name="Detail">For not found and conflict: the single endpoint's problem detail.</param>
public sealed record BatchEndItemResult(string TransactionId, string? MessageId, MessageState? State, BatchEndStatus Status, string? Code = null, string? Detail = null);

/// <summary>Answer to a batch commit or rollback: one result per id, in request order.</summary>
/// <param name="Results">The results.</param>
public sealed record BatchEndResult(IReadOnlyList<BatchEndItemResult> Results);

/// <summary>A transaction as <c>GET /v1/transactions/{id}</c> shows it.</summary>
/// <param name="TransactionId">The transaction id.</param>
/// <param name="MessageId">The half message's id.</param>
/// <param name="Topic">The topic.</param>
/// <param name="ProducerGroup">The producer group.</param>
/// <param name="State">Prepared, committed or rolled back.</param>
/// <param name="CheckCount">How many check-backs were sent.</param>
/// <param name="ResolvedBy">Who ended it, or null while prepared.</param>
/// <param name="CreatedAt">When the half message was stored.</param>
/// <param name="ResolvedAt">When it ended.</param>
/// <param name="LastCheckAt">When the last check-back was sent.</param>
/// <param name="LastCheckResult">What the last check-back got: <c>unknown</c>, <c>timeout</c>, <c>http 503</c>, …</param>
/// <param name="NextCheckAt">When the next check-back is due.</param>
/// <param name="UnreachableCount">
/// Check-backs that could not reach the producer (connection refused, DNS, connect timeout); they do
/// not count in <paramref name="CheckCount"/> and do not use up the broker's MaxChecks.
/// </param>
/// <param name="UnknownCount">Check-backs answered unknown, or with a timeout, an error status or an invalid answer.</param>
public sealed record TransactionInfo(
    string TransactionId,
    string MessageId,
    string Topic,
    string ProducerGroup,
    MessageState State,
    int CheckCount,
    TransactionResolver? ResolvedBy,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ResolvedAt,
    DateTimeOffset? LastCheckAt,
    string? LastCheckResult,
    DateTimeOffset? NextCheckAt,
    int UnreachableCount = 0,
    int UnknownCount = 0);

/// <summary>A page of transactions.</summary>
/// <param name="Transactions">The transactions, oldest first.</param>
/// <param name="Next">Cursor for the next page (pass as <c>after</c>), or null at the end.</param>
public sealed record TransactionList(IReadOnlyList<TransactionInfo> Transactions, string? Next);

/// <summary>Body of <c>PUT /v1/producer-groups/{group}</c>.</summary>
/// <param name="CheckUrl">Where the broker sends check-backs.</param>
/// <param name="CheckTimeout">How long a check-back may take (100 ms to 60 s; null for the broker's 3 s).</param>
/// <param name="MaxChecksInFlight">Check calls outstanding to the group at once (1 to 1000); null keeps the group's (the broker's default, 4, for a new group).</param>
/// <param name="MaxChecksPerSecond">Check calls the group gets per second at most (0 = no limit, up to 100,000); null keeps the group's.</param>
public sealed record ProducerGroupRequest(
    Uri? CheckUrl,
    [property: JsonPropertyName("checkTimeoutMs"), JsonConverter(typeof(NullableMillisecondsJsonConverter))] TimeSpan? CheckTimeout = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? MaxChecksInFlight = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? MaxChecksPerSecond = null);

/// <summary>A stored producer group.</summary>
/// <param name="ProducerGroup">The group name.</param>
/// <param name="CheckUrl">Its check URL, if any.</param>
/// <param name="CheckTimeout">Its check timeout.</param>
/// <param name="MaxChecksInFlight">Check calls outstanding to it at once, at most (the limit in effect).</param>
/// <param name="MaxChecksPerSecond">Check calls per second at most; null for no limit.</param>
public sealed record ProducerGroupInfo(
    string ProducerGroup,
    Uri? CheckUrl,
    [property: JsonPropertyName("checkTimeoutMs"), JsonConverter(typeof(MillisecondsJsonConverter))] TimeSpan CheckTimeout,
    int MaxChecksInFlight = 0,
    int? MaxChecksPerSecond = null);

/// <summary>Push settings of a subscription.</summary>
/// <param name="Url">Where the broker POSTs each message.</param>
/// <param name="Timeout">How long a push may take (100 ms to 60 s; null for the broker's 5 s).</param>
public sealed record PushEndpoint(
    Uri Url,
    [property: JsonPropertyName("timeoutMs"), JsonConverter(typeof(NullableMillisecondsJsonConverter))] TimeSpan? Timeout = null);

/// <summary>Body of <c>PUT /v1/consumer-groups/{group}/subscriptions/{topic}</c>.</summary>
/// <param name="TagFilter"><c>*</c> or tags joined by <c>||</c>.</param>
/// <param name="Push">Push settings; null for a pull subscription.</param>
/// <param name="MaxAttempts">Deliveries before giving up (1–1000; null for the broker's 16).</param>
/// <param name="OnExhausted">Dead-letter (default) or discard.</param>
public sealed record SubscriptionRequest(
    string? TagFilter = null,
    PushEndpoint? Push = null,
    int? MaxAttempts = null,
    ExhaustedAction? OnExhausted = null);

/// <summary>Message counts of one subscription.</summary>
/// <param name="Ready">Deliverable now.</param>
/// <param name="InFlight">Received and not yet acked.</param>
/// <param name="Retrying">Waiting for a retry.</param>
/// <param name="DeadLettered">Dead letters.</param>
public sealed record SubscriptionCounts(long Ready, long InFlight, long Retrying, long DeadLettered);

/// <summary>A stored subscription.</summary>
/// <param name="ConsumerGroup">The consumer group.</param>
/// <param name="Topic">The topic.</param>
/// <param name="TagFilter">The tag filter.</param>
/// <param name="Push">Push settings, or null for pull.</param>
/// <param name="MaxAttempts">Deliveries before giving up.</param>
/// <param name="OnExhausted">What happens then.</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="Counts">Message counts (in <c>GET /v1/consumer-groups/{group}</c> only).</param>
public sealed record SubscriptionInfo(
    string ConsumerGroup,
    string Topic,
    string TagFilter,
    PushEndpoint? Push,
    int MaxAttempts,
    ExhaustedAction OnExhausted,
    DateTimeOffset CreatedAt,
    SubscriptionCounts? Counts = null);

/// <summary>A consumer group and its subscriptions.</summary>
/// <param name="ConsumerGroup">The group name.</param>
/// <param name="Subscriptions">Its subscriptions with counts.</param>
public sealed record ConsumerGroupInfo(string ConsumerGroup, IReadOnlyList<SubscriptionInfo> Subscriptions);

/// <summary>Body of a pull <c>receive</c>.</summary>
/// <param name="MaxMessages">1–100.</param>
/// <param name="WaitSeconds">Long-poll wait, 0–30.</param>
/// <param name="InvisibleSeconds">How long received messages stay hidden, 1–43200.</param>
internal sealed record ReceiveRequest(int MaxMessages = 16, int WaitSeconds = 20, int InvisibleSeconds = 30);

/// <summary>A message as a pull receive returns it.</summary>
/// <param name="MessageId">The message id (stable across redeliveries: use it for idempotency).</param>
/// <param name="ReceiptHandle">The handle to ack, nack or extend this delivery.</param>
/// <param name="Topic">The topic.</param>
/// <param name="Tag">The tag.</param>
/// <param name="Keys">The business keys.</param>
/// <param name="Properties">The properties.</param>
/// <param name="Body">The body.</param>
/// <param name="Attempt">1 for the first delivery.</param>
/// <param name="BornAt">When the message was sent.</param>
/// <param name="TraceParent">The producer's W3C <c>traceparent</c>, when its send carried one.</param>
/// <param name="OrderingKey">The message's ordering key, when it was sent with one.</param>
public sealed record ReceivedMessageData(
    string MessageId,
    string ReceiptHandle,
    string Topic,
    string? Tag,
    IReadOnlyList<string>? Keys,
    IReadOnlyDictionary<string, string>? Properties,
    JsonElement Body,
    int Attempt,
    DateTimeOffset BornAt,
    string? TraceParent = null,
    string? OrderingKey = null);

/// <summary>Answer to a pull receive.</summary>
/// <param name="Messages">The messages; empty when none came within the wait.</param>
internal sealed record ReceiveResult(IReadOnlyList<ReceivedMessageData> Messages);

/// <summary>Body of an <c>ack</c>.</summary>
/// <param name="ReceiptHandles">The handles to ack.</param>
internal sealed record AckRequest(IReadOnlyList<string> ReceiptHandles);

/// <summary>Answer to an <c>ack</c>.</summary>
/// <param name="Acked">How many were acked.</param>
/// <param name="Stale">Handles whose visibility ran out or that were already acked.</param>
public sealed record AckResult(int Acked, IReadOnlyList<string> Stale);

/// <summary>Body of a <c>nack</c>.</summary>
/// <param name="ReceiptHandle">The handle.</param>
/// <param name="RetryAfterSeconds">Delay before redelivery; null for the next backoff level.</param>
internal sealed record NackRequest(string ReceiptHandle, int? RetryAfterSeconds = null);

/// <summary>Body of a <c>change-invisibility</c>.</summary>
/// <param name="ReceiptHandle">The handle.</param>
/// <param name="InvisibleSeconds">New invisibility, counted from now (1–43200).</param>
internal sealed record ChangeInvisibilityRequest(string ReceiptHandle, int InvisibleSeconds);

/// <summary>Answer to a <c>change-invisibility</c>.</summary>
/// <param name="ReceiptHandle">The handle, still valid for ack.</param>
/// <param name="VisibleAt">When the message becomes visible again unless acked.</param>
public sealed record ChangeInvisibilityResult(string ReceiptHandle, DateTimeOffset VisibleAt);

/// <summary>A dead letter.</summary>
/// <param name="MessageId">The message id.</param>
/// <param name="Topic">The topic.</param>
/// <param name="Tag">The tag.</param>
/// <param name="Keys">The keys.</param>
/// <param name="Attempts">Deliveries made.</param>
/// <param name="LastError">What the last attempt got.</param>
/// <param name="DeadLetteredAt">When it became a dead letter.</param>
/// <param name="BornAt">When it was sent.</param>
public sealed record DeadLetter(
    string MessageId,
    string Topic,
    string? Tag,
    IReadOnlyList<string>? Keys,
    int Attempts,
    string? LastError,
    DateTimeOffset DeadLetteredAt,
    DateTimeOffset BornAt);

/// <summary>A consumer group's dead letters.</summary>
/// <param name="DeadLetters">The dead letters.</param>
public sealed record DeadLetterList(IReadOnlyList<DeadLetter> DeadLetters);

/// <summary>Body of a dead-letter redrive.</summary>
/// <param name="MessageIds">The ids to redrive; null for all.</param>
internal sealed record RedriveRequest(IReadOnlyList<string>? MessageIds = null);

/// <summary>Answer to deleting dead letters in bulk.</summary>
/// <param name="Deleted">How many were removed.</param>
public sealed record DeleteDeadLettersResult(int Deleted);

/// <summary>Delivery state of a message for one consumer group.</summary>
/// <param name="ConsumerGroup">The group.</param>
/// <param name="State">The state.</param>
/// <param name="Attempts">Deliveries made.</param>
/// <param name="LastError">What the last failed attempt got.</param>
/// <param name="NextAttemptAt">When the next attempt is due.</param>
public sealed record DeliveryInfo(
    string ConsumerGroup,
    DeliveryState State,
    int Attempts,
    string? LastError,
    DateTimeOffset? NextAttemptAt);

/// <summary>A message as <c>GET /v1/messages/{id}</c> shows it.</summary>
/// <param name="MessageId">The id.</param>
/// <param name="Topic">The topic.</param>
/// <param name="Tag">The tag.</param>
/// <param name="Keys">The keys.</param>
/// <param name="Properties">The properties.</param>
/// <param name="Body">The body.</param>
/// <param name="State">Prepared, committed or rolled back.</param>
/// <param name="TransactionId">Its transaction id, for a half message.</param>
/// <param name="ProducerGroup">Its producer group, for a half message.</param>
/// <param name="BornAt">When it was sent.</param>
/// <param name="DeliverAt">When it becomes deliverable.</param>
/// <param name="Deliveries">Per consumer group delivery state.</param>
public sealed record MessageInfo(
    string MessageId,
    string Topic,
    string? Tag,
    IReadOnlyList<string>? Keys,
    IReadOnlyDictionary<string, string>? Properties,
    JsonElement Body,
    MessageState State,
    string? TransactionId,
    string? ProducerGroup,
    DateTimeOffset BornAt,
    DateTimeOffset? DeliverAt,
    IReadOnlyList<DeliveryInfo>? Deliveries);

/// <summary>Messages found by key.</summary>
/// <param name="Messages">The messages.</param>
public sealed record MessageList(IReadOnlyList<MessageInfo> Messages);

/// <summary>A topic and its message count.</summary>
/// <param name="Topic">The topic.</param>
/// <param name="MessageCount">Messages stored for it.</param>
public sealed record TopicInfo(string Topic, long MessageCount);

/// <summary>The broker's topics.</summary>
/// <param name="Topics">The topics.</param>
public sealed record TopicList(IReadOnlyList<TopicInfo> Topics);

/// <summary>The check-back request the broker POSTs to a producer group's check URL.</summary>
/// <param name="TransactionId">The transaction to resolve.</param>
/// <param name="MessageId">The half message's id.</param>
/// <param name="Topic">The topic.</param>
/// <param name="ProducerGroup">The producer group.</param>
/// <param name="Tag">The tag.</param>
/// <param name="Keys">The keys.</param>
/// <param name="Properties">The properties.</param>
/// <param name="Body">The body.</param>
/// <param name="CheckTimes">1 for the first check of this transaction.</param>
/// <param name="BornAt">When the half message was sent.</param>
public sealed record TransactionCheckRequest(
    string TransactionId,
    string MessageId,
    string Topic,
    string ProducerGroup,
    string? Tag,
    IReadOnlyList<string>? Keys,
    IReadOnlyDictionary<string, string>? Properties,
    JsonElement Body,
    int CheckTimes,
    DateTimeOffset BornAt);

/// <summary>The answer to a check-back.</summary>
/// <param name="State">Commit, rollback or unknown.</param>
/// <param name="RetryAfterSeconds">With unknown: check again after this many seconds, without spending a check (left out when null).</param>
internal sealed record TransactionCheckResponse(LocalTransactionState State, int? RetryAfterSeconds = null);

/// <summary>The request the broker POSTs to a push subscription's URL.</summary>
/// <param name="MessageId">The message id (stable across redeliveries).</param>
/// <param name="Topic">The topic.</param>
/// <param name="Tag">The tag.</param>
/// <param name="Keys">The keys.</param>
/// <param name="Properties">The properties.</param>
/// <param name="Body">The body.</param>
/// <param name="Attempt">1 for the first delivery.</param>
/// <param name="BornAt">When the message was sent.</param>
/// <param name="ConsumerGroup">The consumer group this delivery is for.</param>
/// <param name="OrderingKey">The message's ordering key, when it was sent with one.</param>
internal sealed record PushRequest(
    string MessageId,
    string Topic,
    string? Tag,
    IReadOnlyList<string>? Keys,
    IReadOnlyDictionary<string, string>? Properties,
    JsonElement Body,
    int Attempt,
    DateTimeOffset BornAt,
    string ConsumerGroup,
    string? OrderingKey = null);

/// <summary>An RFC 9457 problem-details answer from the broker.</summary>
/// <param name="Type">Problem type URI.</param>
/// <param name="Title">Short title.</param>
/// <param name="Status">HTTP status.</param>
/// <param name="Detail">What went wrong, for a person.</param>
/// <param name="Code">Stable machine-readable code (e.g. <c>transaction-conflict</c>).</param>
/// <param name="Errors">Per-field validation errors.</param>
internal sealed record ProblemDetailsData(
    string? Type = null,
    string? Title = null,
    int? Status = null,
    string? Detail = null,
    string? Code = null,
    IReadOnlyDictionary<string, string[]>? Errors = null);
