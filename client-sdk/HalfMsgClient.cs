using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Client;

/// <summary>
/// The <see cref="IHalfMsgClient"/> that <c>AddHalfMsgClient</c> registers (a singleton): typed bodies,
/// generated ids, the broker's limits checked before sending, and an <see cref="IAsyncEnumerable{T}"/>
/// receive loop over the broker's HTTP API. Resolve it, or <see cref="IHalfMsgClient"/>, from DI.
/// </summary>
public sealed class HalfMsgClient : IHalfMsgClient
{
    private readonly ILogger _logger;

    internal HalfMsgClient(IHalfMsgApi api, IOptions<HalfMsgClientOptions> options, ILogger<HalfMsgClient>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(api);
        ArgumentNullException.ThrowIfNull(options);
        Api = api;
        JsonOptions = options.Value.JsonSerializerOptions;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The HTTP API behind the facade (an implementation detail, for the SDK and its tests).</summary>
    internal IHalfMsgApi Api { get; }

    /// <summary>Options used for typed bodies (<see cref="HalfMsgClientOptions.JsonSerializerOptions"/>).</summary>
    public JsonSerializerOptions JsonOptions { get; }

    /// <summary>Serializes a typed body as the client does (a <see cref="JsonElement"/> passes through), e.g. for batch items.</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <param name="body">The body.</param>
    /// <returns>The JSON value.</returns>
    public JsonElement ToJson<T>(T body) => body is JsonElement element ? element : JsonSerializer.SerializeToElement(body, JsonOptions);

    /// <inheritdoc />
    public Task<SendMessageResult> SendAsync<T>(string topic, T body, MessageOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        options ??= MessageOptions.Default;
        CheckDelay(options.Delay, options.DeliverAt, nameof(options));
        var request = new SendMessageRequest(
            ToJson(body),
            options.Tag,
            options.Keys,
            options.Properties,
            options.Delay is { } delay ? HalfMsgLimits.WholeSeconds(delay) : null,
            options.DeliverAt,
            options.OrderingKey);
        return Api.SendMessageAsync(topic, request, options.IdempotencyKey ?? Guid.NewGuid().ToString("N"), cancellationToken);
    }

    /// <inheritdoc />
    public Task<SendHalfMsgResult> SendHalfAsync<T>(string topic, string producerGroup, T body, HalfMsgSendOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentException.ThrowIfNullOrEmpty(producerGroup);
        options ??= HalfMsgSendOptions.Default;
        CheckImmunity(options.CheckImmunity, nameof(options));
        var request = new SendHalfMsgRequest(
            producerGroup,
            ToJson(body),
            options.TransactionId ?? TransactionIds.New(),
            options.Tag,
            options.Keys,
            options.Properties,
            options.CheckImmunity is { } immunity ? HalfMsgLimits.WholeSeconds(immunity) : null,
            options.OrderingKey);
        return Api.SendHalfMsgAsync(topic, request, cancellationToken);
    }

    /// <inheritdoc />
    public Task<SendTransactionResult> SendTransactionAsync(
        string producerGroup,
        IReadOnlyList<TransactionMessage> messages,
        string? transactionId = null,
        TimeSpan? checkImmunity = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(producerGroup);
        ArgumentNullException.ThrowIfNull(messages);
        HalfMsgLimits.ThrowIfOutside(messages.Count, 1, HalfMsgLimits.MaxBatchMessages, nameof(messages));
        foreach (var message in messages)
        {
            CheckDelay(message.Delay, null, nameof(messages));
        }

        CheckImmunity(checkImmunity, nameof(checkImmunity));
        var request = new SendTransactionRequest(producerGroup, messages, transactionId ?? TransactionIds.New(),
            checkImmunity is { } immunity ? HalfMsgLimits.WholeSeconds(immunity) : null);
        return Api.SendTransactionAsync(request, cancellationToken);
    }

    /// <inheritdoc />
    public Task<EndTransactionResult> CommitAsync(string transactionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(transactionId);
        return Api.CommitAsync(transactionId, cancellationToken);
    }

    /// <inheritdoc />
    public Task<EndTransactionResult> RollbackAsync(string transactionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(transactionId);
        return Api.RollbackAsync(transactionId, cancellationToken);
    }

    /// <inheritdoc />
    public Task<BatchSendResult> SendBatchAsync(IEnumerable<SendMessageBatchItem> items, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        var list = items.Select(i => i.IdempotencyKey is null ? i with { IdempotencyKey = Guid.NewGuid().ToString("N") } : i).ToList();
        HalfMsgLimits.ThrowIfBatchSize(list.Count, HalfMsgLimits.MaxBatchMessages, nameof(items));
        foreach (var item in list)
        {
            CheckDelay(item.Delay, item.DeliverAt, nameof(items));
        }

        return Api.SendMessageBatchAsync(new SendMessageBatchRequest(list), cancellationToken);
    }

    /// <inheritdoc />
    public Task<BatchSendResult> SendHalfBatchAsync(IEnumerable<HalfMsgBatchItem> items, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        var list = items.Select(i => i.TransactionId is null ? i with { TransactionId = TransactionIds.New() } : i).ToList();
        HalfMsgLimits.ThrowIfBatchSize(list.Count, HalfMsgLimits.MaxBatchMessages, nameof(items));
        foreach (var item in list)
        {
            CheckImmunity(item.CheckImmunity, nameof(items));
        }

        return Api.SendHalfMsgBatchAsync(new HalfMsgBatchRequest(list), cancellationToken);
    }

    /// <inheritdoc />
    public Task<BatchEndResult> CommitBatchAsync(IEnumerable<string> transactionIds, CancellationToken cancellationToken = default) =>
        Api.CommitBatchAsync(TransactionIdBatch(transactionIds), cancellationToken);

    /// <inheritdoc />
    public Task<BatchEndResult> RollbackBatchAsync(IEnumerable<string> transactionIds, CancellationToken cancellationToken = default) =>
        Api.RollbackBatchAsync(TransactionIdBatch(transactionIds), cancellationToken);

    /// <inheritdoc />
    public async Task<IReadOnlyList<ReceivedMessage>> ReceiveAsync(string consumerGroup, string topic, ReceiveOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        var request = ToRequest(options ?? ReceiveOptions.Default);
        var result = await Api.ReceiveAsync(consumerGroup, topic, request, cancellationToken).ConfigureAwait(false);
        return result.Messages.Select(m => new ReceivedMessage(this, consumerGroup, m, JsonOptions)).ToList();
    }

    /// <inheritdoc />
    public IAsyncEnumerable<ReceivedMessage> ReceiveAllAsync(string consumerGroup, string topic, ReceiveOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        return ReceiveAllCoreAsync(consumerGroup, topic, ToRequest(options ?? ReceiveOptions.Default), cancellationToken);
    }

    /// <inheritdoc />
    public Task<AckResult> AckAsync(string consumerGroup, IEnumerable<string> receiptHandles, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentNullException.ThrowIfNull(receiptHandles);
        var handles = receiptHandles.ToList();
        HalfMsgLimits.ThrowIfBatchSize(handles.Count, HalfMsgLimits.MaxAckHandles, nameof(receiptHandles));
        return Api.AckAsync(consumerGroup, new AckRequest(handles), cancellationToken);
    }

    /// <inheritdoc />
    public Task NackAsync(string consumerGroup, string receiptHandle, TimeSpan? retryAfter = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(receiptHandle);
        if (retryAfter is { } delay)
        {
            HalfMsgLimits.ThrowIfOutside(delay, TimeSpan.Zero, HalfMsgLimits.MaxNackDelay, nameof(retryAfter));
        }

        return WithoutAnswer(Api.NackAsync(consumerGroup, new NackRequest(receiptHandle, retryAfter is { } d ? HalfMsgLimits.WholeSeconds(d) : null), cancellationToken));
    }

    /// <inheritdoc />
    public Task<ChangeInvisibilityResult> ChangeInvisibilityAsync(string consumerGroup, string receiptHandle, TimeSpan invisibleFor, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(receiptHandle);
        HalfMsgLimits.ThrowIfOutside(invisibleFor, HalfMsgLimits.MinInvisibleFor, HalfMsgLimits.MaxInvisibleFor, nameof(invisibleFor));
        return Api.ChangeInvisibilityAsync(consumerGroup, new ChangeInvisibilityRequest(receiptHandle, HalfMsgLimits.WholeSeconds(invisibleFor)), cancellationToken);
    }

    /// <inheritdoc />
    public Task<TransactionInfo> GetTransactionAsync(string transactionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(transactionId);
        return Api.GetTransactionAsync(transactionId, cancellationToken);
    }

    /// <inheritdoc />
    public Task<TransactionList> ListTransactionsAsync(TransactionQuery? query = null, CancellationToken cancellationToken = default)
    {
        query ??= new TransactionQuery();
        CheckPageSize(query.Limit, nameof(query));
        var state = query.State switch
        {
            null => null,
            MessageState.Prepared => "prepared",
            MessageState.Committed => "committed",
            MessageState.RolledBack => "rolledBack",
            _ => throw new ArgumentOutOfRangeException(nameof(query), query.State, "Unknown transaction state."),
        };
        return Api.ListTransactionsAsync(state, query.ProducerGroup, query.Topic, query.Limit, query.After, cancellationToken);
    }

    /// <inheritdoc />
    public Task<ProducerGroupInfo> PutProducerGroupAsync(string producerGroup, ProducerGroupRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(producerGroup);
        ArgumentNullException.ThrowIfNull(request);
        if (request.CheckTimeout is { } timeout)
        {
            HalfMsgLimits.ThrowIfOutsideMs(timeout, HalfMsgLimits.MinCallTimeout, HalfMsgLimits.MaxCallTimeout, nameof(request) + ".CheckTimeout");
        }

        if (request.MaxChecksInFlight is { } inFlight)
        {
            HalfMsgLimits.ThrowIfOutside(inFlight, 1, 1000, nameof(request) + ".MaxChecksInFlight");
        }

        if (request.MaxChecksPerSecond is { } perSecond)
        {
            HalfMsgLimits.ThrowIfOutside(perSecond, 0, 100_000, nameof(request) + ".MaxChecksPerSecond");
        }

        return Api.PutProducerGroupAsync(producerGroup, request, cancellationToken);
    }

    /// <inheritdoc />
    public Task<ProducerGroupInfo> GetProducerGroupAsync(string producerGroup, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(producerGroup);
        return Api.GetProducerGroupAsync(producerGroup, cancellationToken);
    }

    /// <inheritdoc />
    public Task<SubscriptionInfo> PutSubscriptionAsync(string consumerGroup, string topic, SubscriptionRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentNullException.ThrowIfNull(request);
        CheckSubscription(request, nameof(request));
        return Api.PutSubscriptionAsync(consumerGroup, topic, request, cancellationToken);
    }

    /// <inheritdoc />
    public Task<ConsumerGroupInfo> GetConsumerGroupAsync(string consumerGroup, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        return Api.GetConsumerGroupAsync(consumerGroup, cancellationToken);
    }

    /// <inheritdoc />
    public Task DeleteSubscriptionAsync(string consumerGroup, string topic, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        return WithoutAnswer(Api.DeleteSubscriptionAsync(consumerGroup, topic, cancellationToken));
    }

    /// <inheritdoc />
    public Task<DeadLetterList> GetDeadLettersAsync(string consumerGroup, string? topic = null, int? limit = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        CheckPageSize(limit, nameof(limit));
        return Api.GetDeadLettersAsync(consumerGroup, topic, limit, cancellationToken);
    }

    /// <inheritdoc />
    public Task RedriveDeadLettersAsync(string consumerGroup, IEnumerable<string>? messageIds = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        return WithoutAnswer(Api.RedriveDeadLettersAsync(consumerGroup, new RedriveRequest(messageIds?.ToList()), cancellationToken));
    }

    /// <inheritdoc />
    public async Task<int> ReplayAsync(string consumerGroup, string topic, DateTimeOffset from, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        var result = await Api.ReplayAsync(consumerGroup, topic, new ReplayRequest(from), cancellationToken).ConfigureAwait(false);
        return result.Replayed;
    }

    /// <inheritdoc />
    public async Task<int> RetryNowAsync(string consumerGroup, string topic, IEnumerable<string>? messageIds = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        var ids = messageIds?.ToList();
        if (ids is { Count: 0 or > 1000 }) throw new ArgumentOutOfRangeException(nameof(messageIds), ids.Count, "Give 1 to 1000 message ids, or null for every retrying delivery.");
        var result = await Api.RetryNowAsync(consumerGroup, topic, new RetryNowRequest(ids), cancellationToken).ConfigureAwait(false);
        return result.Retried;
    }

    /// <inheritdoc />
    public Task DeleteDeadLetterAsync(string consumerGroup, string messageId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(messageId);
        return WithoutAnswer(Api.DeleteDeadLetterAsync(consumerGroup, messageId, cancellationToken));
    }

    /// <inheritdoc />
    public Task<DeleteDeadLettersResult> DeleteDeadLettersAsync(string consumerGroup, string? topic = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        return Api.DeleteDeadLettersAsync(consumerGroup, topic, cancellationToken);
    }

    /// <inheritdoc />
    public Task<MessageInfo> GetMessageAsync(string messageId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(messageId);
        return Api.GetMessageAsync(messageId, cancellationToken);
    }

    /// <inheritdoc />
    public Task<MessageList> FindMessagesAsync(string key, string? topic = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        return Api.FindMessagesAsync(key, topic, cancellationToken);
    }

    /// <inheritdoc />
    public Task<TopicList> GetTopicsAsync(CancellationToken cancellationToken = default) => Api.GetTopicsAsync(cancellationToken);

    private async IAsyncEnumerable<ReceivedMessage> ReceiveAllCoreAsync(string consumerGroup, string topic, ReceiveRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
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
                yield return new ReceivedMessage(this, consumerGroup, message, JsonOptions);
            }
        }
    }

    /// <summary>
    /// Refit hands a call without a response body its transport failure as it is; every other call's becomes a
    /// <see cref="HalfMsgException"/> (status 0, <c>transport</c>) through the Refit settings. Make these match.
    /// </summary>
    private static async Task WithoutAnswer(Task call)
    {
        try
        {
            await call.ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new HalfMsgException(0, "transport", ex.Message, ex);
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

    private static ReceiveRequest ToRequest(ReceiveOptions options)
    {
        HalfMsgLimits.ThrowIfOutside(options.MaxMessages, 1, HalfMsgLimits.MaxReceiveMessages, nameof(options) + ".MaxMessages");
        HalfMsgLimits.ThrowIfOutside(options.WaitTime, TimeSpan.Zero, HalfMsgLimits.MaxWaitTime, nameof(options) + ".WaitTime");
        HalfMsgLimits.ThrowIfOutside(options.InvisibleFor, HalfMsgLimits.MinInvisibleFor, HalfMsgLimits.MaxInvisibleFor, nameof(options) + ".InvisibleFor");
        return new(options.MaxMessages, HalfMsgLimits.WholeSeconds(options.WaitTime), HalfMsgLimits.WholeSeconds(options.InvisibleFor));
    }

    private static TransactionIdsRequest TransactionIdBatch(IEnumerable<string> transactionIds)
    {
        ArgumentNullException.ThrowIfNull(transactionIds);
        var ids = transactionIds.ToList();
        HalfMsgLimits.ThrowIfBatchSize(ids.Count, HalfMsgLimits.MaxBatchTransactionIds, nameof(transactionIds));
        return new TransactionIdsRequest(ids);
    }

    private static void CheckDelay(TimeSpan? delay, DateTimeOffset? deliverAt, string paramName)
    {
        if (delay is { } d)
        {
            if (deliverAt is not null)
            {
                throw new ArgumentException("Give Delay or DeliverAt, not both.", paramName);
            }

            HalfMsgLimits.ThrowIfOutside(d, TimeSpan.Zero, HalfMsgLimits.MaxDelay, paramName + ".Delay");
        }
    }

    private static void CheckImmunity(TimeSpan? immunity, string paramName)
    {
        if (immunity is { } i)
        {
            HalfMsgLimits.ThrowIfOutside(i, TimeSpan.Zero, HalfMsgLimits.MaxCheckImmunity, paramName + ".CheckImmunity");
        }
    }

    private static void CheckPageSize(int? limit, string paramName)
    {
        if (limit is { } l)
        {
            HalfMsgLimits.ThrowIfOutside(l, 1, HalfMsgLimits.MaxPageSize, paramName);
        }
    }

    internal static void CheckSubscription(SubscriptionRequest request, string paramName)
    {
        if (request.MaxAttempts is { } attempts)
        {
            HalfMsgLimits.ThrowIfOutside(attempts, 1, HalfMsgLimits.MaxDeliveryAttempts, paramName + ".MaxAttempts");
        }

        if (request.Push?.Timeout is { } timeout)
        {
            HalfMsgLimits.ThrowIfOutsideMs(timeout, HalfMsgLimits.MinCallTimeout, HalfMsgLimits.MaxCallTimeout, paramName + ".Push.Timeout");
        }
    }
}
