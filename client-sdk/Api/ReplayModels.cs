namespace HalfMsgBroker.Client;

/// <summary>Body of a subscription's <c>replay</c>.</summary>
/// <param name="From">Messages committed at or after this time are delivered again.</param>
internal sealed record ReplayRequest(DateTimeOffset From);

/// <summary>Answer to a replay.</summary>
/// <param name="Replayed">How many deliveries were scheduled again (acked, discarded or dead-lettered ones; pending ones are not doubled).</param>
internal sealed record ReplayResult(int Replayed);

/// <summary>Body of a subscription's <c>retry-now</c>.</summary>
/// <param name="MessageIds">Only these messages' retries (1–1000); null for every retrying delivery of the subscription.</param>
internal sealed record RetryNowRequest(IReadOnlyList<string>? MessageIds = null);

/// <summary>Answer to a retry-now.</summary>
/// <param name="Retried">How many deliveries waiting for a retry backoff are due now.</param>
internal sealed record RetryNowResult(int Retried);
