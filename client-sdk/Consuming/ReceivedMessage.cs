using System.Text.Json;

namespace HalfMsgBroker.Client;

/// <summary>A message received by pull, settled by its receipt handle: ack, nack or extend.</summary>
public sealed class ReceivedMessage
{
    private readonly IHalfMsgClient _client;
    private readonly JsonSerializerOptions _jsonOptions;

    /// <summary>
    /// Wraps a received message. <see cref="IHalfMsgClient.ReceiveAsync"/> makes these; construct one yourself
    /// only to test code that handles them (with a mocked <see cref="IHalfMsgClient"/>).
    /// </summary>
    /// <param name="client">The client that settles it (ack, nack, extend).</param>
    /// <param name="consumerGroup">The consumer group it was received for.</param>
    /// <param name="data">The message as the broker returned it.</param>
    /// <param name="jsonOptions">Options for <see cref="GetBody{T}"/>; null for the web defaults (camelCase).</param>
    public ReceivedMessage(IHalfMsgClient client, string consumerGroup, ReceivedMessageData data, JsonSerializerOptions? jsonOptions = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentNullException.ThrowIfNull(data);
        _client = client;
        _jsonOptions = jsonOptions ?? JsonSerializerOptions.Web;
        ConsumerGroup = consumerGroup;
        Data = data;
        ReceiptHandle = data.ReceiptHandle;
    }

    /// <summary>The message as the broker returned it.</summary>
    public ReceivedMessageData Data { get; }

    /// <summary>The consumer group it was received for.</summary>
    public string ConsumerGroup { get; }

    /// <summary>The message id (the same on every redelivery).</summary>
    public string MessageId => Data.MessageId;

    /// <summary>The handle of this delivery.</summary>
    public string ReceiptHandle { get; private set; }

    /// <summary>The topic.</summary>
    public string Topic => Data.Topic;

    /// <summary>The tag.</summary>
    public string? Tag => Data.Tag;

    /// <summary>The keys.</summary>
    public IReadOnlyList<string> Keys => Data.Keys ?? [];

    /// <summary>The properties.</summary>
    public IReadOnlyDictionary<string, string> Properties => Data.Properties ?? new Dictionary<string, string>();

    /// <summary>The raw JSON body.</summary>
    public JsonElement Body => Data.Body;

    /// <summary>1 for the first delivery.</summary>
    public int Attempt => Data.Attempt;

    /// <summary>When the message was sent.</summary>
    public DateTimeOffset BornAt => Data.BornAt;

    /// <summary>The message's ordering key, if it was sent with one: the group gets the key's messages one at a time, in commit order.</summary>
    public string? OrderingKey => Data.OrderingKey;

    /// <summary>Deserializes the body.</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <returns>The body.</returns>
    public T GetBody<T>() => Data.Body.Deserialize<T>(_jsonOptions)!;

    /// <summary>The message as a handler sees it.</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <returns>The delivery.</returns>
    public HalfMsgDelivery<T> ToDelivery<T>() =>
        new(MessageId, Topic, Tag, Keys, Properties, GetBody<T>(), Body, Attempt, BornAt, ConsumerGroup) { OrderingKey = OrderingKey };

    /// <summary>Acks the message. Not retried automatically.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>True when acked; false when the handle was stale (its visibility ran out or it was acked already).</returns>
    public async Task<bool> AckAsync(CancellationToken cancellationToken = default)
    {
        var result = await _client.AckAsync(ConsumerGroup, [ReceiptHandle], cancellationToken).ConfigureAwait(false);
        return result.Acked > 0;
    }

    /// <summary>Gives the message back for redelivery.</summary>
    /// <param name="retryAfter">Delay before redelivery: 0 to 12 h (<see cref="HalfMsgLimits.MaxNackDelay"/>), whole seconds; null for the broker's next backoff level.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the broker took it back.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="retryAfter"/> is negative or over 12 h.</exception>
    public Task NackAsync(TimeSpan? retryAfter = null, CancellationToken cancellationToken = default) =>
        _client.NackAsync(ConsumerGroup, ReceiptHandle, retryAfter, cancellationToken);

    /// <summary>Keeps the message hidden for <paramref name="invisibleFor"/> from now (change-invisibility).</summary>
    /// <param name="invisibleFor">New invisibility: 1 s to 12 h (<see cref="HalfMsgLimits.MaxInvisibleFor"/>), whole seconds.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>When it becomes visible again unless acked.</returns>
    public async Task<DateTimeOffset> ExtendAsync(TimeSpan invisibleFor, CancellationToken cancellationToken = default)
    {
        var result = await _client.ChangeInvisibilityAsync(ConsumerGroup, ReceiptHandle, invisibleFor, cancellationToken).ConfigureAwait(false);
        if (!string.IsNullOrEmpty(result.ReceiptHandle))
        {
            ReceiptHandle = result.ReceiptHandle;
        }

        return result.VisibleAt;
    }
}

/// <summary>A message as a handler receives it, by push or by pull.</summary>
/// <typeparam name="T">The body type.</typeparam>
/// <param name="MessageId">The message id (the same on every redelivery: de-duplicate on it).</param>
/// <param name="Topic">The topic.</param>
/// <param name="Tag">The tag.</param>
/// <param name="Keys">The keys.</param>
/// <param name="Properties">The properties.</param>
/// <param name="Body">The typed body.</param>
/// <param name="RawBody">The body as JSON.</param>
/// <param name="Attempt">1 for the first delivery.</param>
/// <param name="BornAt">When the message was sent.</param>
/// <param name="ConsumerGroup">The consumer group.</param>
public sealed record HalfMsgDelivery<T>(
    string MessageId,
    string Topic,
    string? Tag,
    IReadOnlyList<string> Keys,
    IReadOnlyDictionary<string, string> Properties,
    T Body,
    JsonElement RawBody,
    int Attempt,
    DateTimeOffset BornAt,
    string ConsumerGroup)
{
    /// <summary>The message's ordering key, if it was sent with one: the group gets the key's messages one at a time, in commit order.</summary>
    public string? OrderingKey { get; init; }
}

/// <summary>Handles messages of one topic, by push (<c>MapHalfMsgPush</c>) or pull (<c>AddPullConsumer</c>).</summary>
/// <typeparam name="T">The body type.</typeparam>
public interface IHalfMsgHandler<T>
{
    /// <summary>Handles one delivery. Throwing makes the broker retry it later.</summary>
    /// <param name="delivery">The message.</param>
    /// <param name="cancellationToken">Cancelled at shutdown (pull) or when the request aborts (push).</param>
    /// <returns>A task that completes when the message is handled.</returns>
    Task HandleAsync(HalfMsgDelivery<T> delivery, CancellationToken cancellationToken = default);
}
