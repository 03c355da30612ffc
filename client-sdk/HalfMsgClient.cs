using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Client;

/// <summary>Optional settings of a plain send.</summary>
public sealed record MessageOptions
{
    /// <summary>Settings with nothing set.</summary>
    public static MessageOptions Default { get; } = new();

    /// <summary>The tag.</summary>
    public string? Tag { get; init; }

    /// <summary>Business keys (for look-up and consumer-side de-duplication).</summary>
    public IReadOnlyList<string>? Keys { get; init; }

    /// <summary>String properties.</summary>
    public IReadOnlyDictionary<string, string>? Properties { get; init; }

    /// <summary>Defers delivery (whole seconds, up to one day).</summary>
    public TimeSpan? Delay { get; init; }

    /// <summary>Defers delivery until this time.</summary>
    public DateTimeOffset? DeliverAt { get; init; }

    /// <summary>The idempotency key; when null the SDK generates one per call.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>Messages of the topic with the same ordering key reach each consumer group one at a time, in commit order.</summary>
    public string? OrderingKey { get; init; }
}

/// <summary>Optional settings of a half-message send.</summary>
public sealed record HalfMessageOptions
{
    /// <summary>Settings with nothing set.</summary>
    public static HalfMessageOptions Default { get; } = new();

    /// <summary>The transaction id; when null a new one is generated (<see cref="TransactionIds.New"/>).</summary>
    public string? TransactionId { get; init; }

    /// <summary>The tag.</summary>
    public string? Tag { get; init; }

    /// <summary>Business keys.</summary>
    public IReadOnlyList<string>? Keys { get; init; }

    /// <summary>String properties.</summary>
    public IReadOnlyDictionary<string, string>? Properties { get; init; }

    /// <summary>Time before the first check-back (whole seconds); null for the broker's <c>CheckAfter</c>.</summary>
    public TimeSpan? CheckImmunity { get; init; }

    /// <summary>Messages of the topic with the same ordering key reach each consumer group one at a time, in commit order.</summary>
    public string? OrderingKey { get; init; }
}

/// <summary>Settings of a pull receive.</summary>
public sealed record ReceiveOptions
{
    /// <summary>16 messages, 20 s wait, 30 s invisibility.</summary>
    public static ReceiveOptions Default { get; } = new();

    /// <summary>At most this many messages per call (1–100).</summary>
    public int MaxMessages { get; init; } = 16;

    /// <summary>Long-poll wait for a first message (0–30 s).</summary>
    public TimeSpan WaitTime { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>How long a received message stays hidden from the group (1 s – 12 h).</summary>
    public TimeSpan InvisibleFor { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Facade over <see cref="IHalfMsgApi"/>: typed bodies, generated ids and an
/// <see cref="IAsyncEnumerable{T}"/> receive loop. Registered as a singleton by <c>AddHalfMsgClient</c>.
/// </summary>
public sealed class HalfMsgClient
{
    private readonly ILogger _logger;

    /// <summary>Creates the facade.</summary>
    /// <param name="api">The typed HTTP client.</param>
    /// <param name="options">Client options (for JSON settings).</param>
    /// <param name="logger">Logger; null for none.</param>
    public HalfMsgClient(IHalfMsgApi api, IOptions<HalfMsgClientOptions> options, ILogger<HalfMsgClient>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(api);
        ArgumentNullException.ThrowIfNull(options);
        Api = api;
        JsonOptions = options.Value.JsonSerializerOptions;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The typed client for every endpoint.</summary>
    public IHalfMsgApi Api { get; }

    /// <summary>Options used for typed bodies.</summary>
    public JsonSerializerOptions JsonOptions { get; }

    /// <summary>Serializes a typed body (a <see cref="JsonElement"/> passes through).</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <param name="body">The body.</param>
    /// <returns>The JSON value.</returns>
    public JsonElement ToJson<T>(T body) => body is JsonElement element ? element : JsonSerializer.SerializeToElement(body, JsonOptions);

    /// <summary>Sends a plain message; retried safely with an idempotency key.</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <param name="topic">The topic.</param>
    /// <param name="body">The body.</param>
    /// <param name="options">Tag, keys, delay, idempotency key.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The message id.</returns>
    public Task<SendMessageResult> SendAsync<T>(string topic, T body, MessageOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        options ??= MessageOptions.Default;
        var request = new SendMessageRequest(
            ToJson(body),
            options.Tag,
            options.Keys,
            options.Properties,
            options.Delay is { } delay ? (int)Math.Ceiling(delay.TotalSeconds) : null,
            options.DeliverAt,
            options.OrderingKey);
        return Api.SendMessageAsync(topic, request, options.IdempotencyKey ?? Guid.NewGuid().ToString("N"), cancellationToken);
    }

    /// <summary>Sends a half (prepared) message. Prefer <see cref="TransactionalProducer"/>, which also ends it.</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <param name="topic">The topic.</param>
    /// <param name="producerGroup">The producer group that answers check-backs.</param>
    /// <param name="body">The body.</param>
    /// <param name="options">Transaction id, tag, keys, check immunity.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The message and transaction ids.</returns>
    public Task<SendHalfMessageResult> SendHalfAsync<T>(string topic, string producerGroup, T body, HalfMessageOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentException.ThrowIfNullOrEmpty(producerGroup);
        options ??= HalfMessageOptions.Default;
        var request = new SendHalfMessageRequest(
            producerGroup,
            ToJson(body),
            options.TransactionId ?? TransactionIds.New(),
            options.Tag,
            options.Keys,
            options.Properties,
            options.CheckImmunity is { } immunity ? (int)Math.Ceiling(immunity.TotalSeconds) : null,
            options.OrderingKey);
        return Api.SendHalfMessageAsync(topic, request, cancellationToken);
    }

    /// <summary>Commits a transaction (idempotent).</summary>
    /// <param name="transactionId">The transaction.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The end state.</returns>
    public Task<EndTransactionResult> CommitAsync(string transactionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(transactionId);
        return Api.CommitAsync(transactionId, cancellationToken);
    }

    /// <summary>Rolls a transaction back (idempotent).</summary>
    /// <param name="transactionId">The transaction.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The end state.</returns>
    public Task<EndTransactionResult> RollbackAsync(string transactionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(transactionId);
        return Api.RollbackAsync(transactionId, cancellationToken);
    }

    /// <summary>Sends up to 100 plain messages in one request (stored together or not at all); retried safely, as each item gets an idempotency key.</summary>
    /// <param name="items">The messages; an item without an idempotency key gets a fresh one.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per item, in order: created, replayed or conflict.</returns>
    public Task<BatchSendResult> SendBatchAsync(IEnumerable<SendMessageBatchItem> items, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        var list = items.Select(i => i.IdempotencyKey is null ? i with { IdempotencyKey = Guid.NewGuid().ToString("N") } : i).ToList();
        return Api.SendMessageBatchAsync(new SendMessageBatchRequest(list), cancellationToken);
    }

    /// <summary>Sends up to 100 half messages in one request, each its own transaction; end them with <see cref="CommitBatchAsync"/> or one by one.</summary>
    /// <param name="items">The half messages; an item without a transaction id gets a new one (<see cref="TransactionIds.New"/>).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per item, in order, with its transaction id.</returns>
    public Task<BatchSendResult> SendHalfBatchAsync(IEnumerable<SendHalfMessageBatchItem> items, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        var list = items.Select(i => i.TransactionId is null ? i with { TransactionId = TransactionIds.New() } : i).ToList();
        return Api.SendHalfMessageBatchAsync(new SendHalfMessageBatchRequest(list), cancellationToken);
    }

    /// <summary>Commits up to 1000 transactions in one request, each on its own (idempotent).</summary>
    /// <param name="transactionIds">The transactions.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per id, in order: committed, rolledBack, notFound or conflict.</returns>
    public Task<BatchEndResult> CommitBatchAsync(IEnumerable<string> transactionIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transactionIds);
        return Api.CommitBatchAsync(new TransactionIdsRequest(transactionIds.ToList()), cancellationToken);
    }

    /// <summary>Rolls back up to 1000 transactions in one request, each on its own (idempotent).</summary>
    /// <param name="transactionIds">The transactions.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>One result per id, in order.</returns>
    public Task<BatchEndResult> RollbackBatchAsync(IEnumerable<string> transactionIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transactionIds);
        return Api.RollbackBatchAsync(new TransactionIdsRequest(transactionIds.ToList()), cancellationToken);
    }

    /// <summary>One long-poll receive.</summary>
    /// <param name="consumerGroup">The consumer group (subscribed to the topic without push).</param>
    /// <param name="topic">The topic.</param>
    /// <param name="options">Batch size, wait, invisibility.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The messages, each with ack/nack/extend.</returns>
    public async Task<IReadOnlyList<ReceivedMessage>> ReceiveAsync(string consumerGroup, string topic, ReceiveOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        options ??= ReceiveOptions.Default;
        var result = await Api.ReceiveAsync(consumerGroup, topic, ToRequest(options), cancellationToken).ConfigureAwait(false);
        return result.Messages.Select(m => new ReceivedMessage(this, consumerGroup, m)).ToList();
    }

    /// <summary>
    /// Receives messages as an endless stream (long polling), like Service Bus' <c>ReceiveMessagesAsync</c>.
    /// Transient failures are retried with a growing delay; the stream ends only through
    /// <paramref name="cancellationToken"/> or a non-transient error. Ack, nack or extend each message.
    /// </summary>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="options">Batch size, wait, invisibility.</param>
    /// <param name="cancellationToken">Stops the stream.</param>
    /// <returns>The messages as they arrive.</returns>
    public IAsyncEnumerable<ReceivedMessage> ReceiveAllAsync(string consumerGroup, string topic, ReceiveOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        options ??= ReceiveOptions.Default;
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxMessages, 1, nameof(options));
        return ReceiveAllCoreAsync(consumerGroup, topic, options, cancellationToken);
    }

    private async IAsyncEnumerable<ReceivedMessage> ReceiveAllCoreAsync(string consumerGroup, string topic, ReceiveOptions options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var request = ToRequest(options);
        var failures = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ReceiveResult result;
            try
            {
                result = await Api.ReceiveAsync(consumerGroup, topic, request, cancellationToken).ConfigureAwait(false);
                failures = 0;
            }
            catch (Exception ex) when (IsTransient(ex) && !cancellationToken.IsCancellationRequested)
            {
                failures++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(30_000, 250 * Math.Pow(2, Math.Min(failures, 8))));
                _logger.LogWarning(ex, "HalfMsg receive for {ConsumerGroup}/{Topic} failed; retrying in {Delay}", consumerGroup, topic, delay);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                continue;
            }

            foreach (var message in result.Messages)
            {
                yield return new ReceivedMessage(this, consumerGroup, message);
            }
        }
    }

    internal static bool IsTransient(Exception ex) => ex switch
    {
        HalfMsgException h => h.IsTransient,
        HttpRequestException => true,
        TimeoutException => true,
        Polly.Timeout.TimeoutRejectedException => true,
        _ => false,
    };

    internal static int ToSeconds(TimeSpan value, int min, int max) =>
        Math.Clamp((int)Math.Ceiling(value.TotalSeconds), min, max);

    private static ReceiveRequest ToRequest(ReceiveOptions options) => new(
        Math.Clamp(options.MaxMessages, 1, 100),
        ToSeconds(options.WaitTime, 0, 30),
        ToSeconds(options.InvisibleFor, 1, 43200));
}
