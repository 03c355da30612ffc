namespace HalfMsgBroker.Client;

/// <summary>Replay and retry-now of a subscription, on <see cref="HalfMsgClient"/>.</summary>
public static class HalfMsgClientReplayExtensions
{
    /// <summary>
    /// Delivers again the group's messages on <paramref name="topic"/> committed at or after <paramref name="from"/>
    /// that retention still holds (like RocketMQ's offset reset). Stored before it answers.
    /// </summary>
    /// <param name="client">The client.</param>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The subscribed topic.</param>
    /// <param name="from">The earliest commit time to deliver again; not in the future.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many deliveries were scheduled again.</returns>
    public static async Task<int> ReplayAsync(this HalfMsgClient client, string consumerGroup, string topic, DateTimeOffset from, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        var result = await client.Api.ReplayAsync(consumerGroup, topic, new ReplayRequest(from), cancellationToken).ConfigureAwait(false);
        return result.Replayed;
    }

    /// <summary>Makes the subscription's deliveries that wait for a retry backoff (or only those of <paramref name="messageIds"/>) due now.</summary>
    /// <param name="client">The client.</param>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The subscribed topic.</param>
    /// <param name="messageIds">Only these messages (1–1000); null for all.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many retries were brought forward.</returns>
    public static async Task<int> RetryNowAsync(this HalfMsgClient client, string consumerGroup, string topic, IEnumerable<string>? messageIds = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        var request = new RetryNowRequest(messageIds?.ToList());
        var result = await client.Api.RetryNowAsync(consumerGroup, topic, request, cancellationToken).ConfigureAwait(false);
        return result.Retried;
    }
}
