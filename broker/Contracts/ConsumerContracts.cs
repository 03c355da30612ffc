using System.Text.Json.Serialization;

namespace HalfMsgBroker.Contracts;

public sealed record SubscriptionRequest
{
    public string? TagFilter { get; init; }
    public PushRequest? Push { get; init; }
    public int? MaxAttempts { get; init; }
    public string? OnExhausted { get; init; }

    /// <summary><c>"auto"</c>: the subscription gets a signing secret of its own; <c>"none"</c>: removes it; absent: keeps it.</summary>
    public string? Signing { get; init; }
}

public sealed record PushRequest
{
    public string? Url { get; init; }
    public int? TimeoutMs { get; init; }
}

public sealed record PushView(string Url, int TimeoutMs);

public sealed record SubscriptionCounts(int Ready, int InFlight, int Retrying, int DeadLettered);

/// <param name="SigningSecret">Only in the answer that created or rotated the secret; never again.</param>
public sealed record SubscriptionView(
    string ConsumerGroup,
    string Topic,
    string TagFilter,
    PushView? Push,
    int MaxAttempts,
    string OnExhausted,
    DateTime CreatedAt,
    SubscriptionCounts? Counts,
    string Signing,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? SigningSecret,
    DateTime? SigningSecretCreatedAt,
    string? SigningSecretFingerprint,
    DateTime? PreviousSigningSecretExpiresAt,
    bool Paused = false,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] PushHealthView? PushHealth = null);

public sealed record ConsumerGroupView(string ConsumerGroup, IReadOnlyList<SubscriptionView> Subscriptions);

public sealed record ReceiveRequest
{
    public int? MaxMessages { get; init; }
    public int? WaitSeconds { get; init; }
    public int? InvisibleSeconds { get; init; }
}

/// <param name="TraceParent">The producer's W3C <c>traceparent</c> when its send carried one, so a consumer continues its trace.</param>
public sealed record ReceivedMessage(
    string MessageId,
    string ReceiptHandle,
    string Topic,
    string? Tag,
    string[] Keys,
    Dictionary<string, string>? Properties,
    RawJson Body,
    int Attempt,
    DateTime BornAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? TraceParent = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? OrderingKey = null);

public sealed record ReceiveResponse(IReadOnlyList<ReceivedMessage> Messages);

public sealed record AckRequest
{
    public string[]? ReceiptHandles { get; init; }
}

public sealed record AckResponse(int Acked, IReadOnlyList<string> Stale);

public sealed record NackRequest
{
    public string? ReceiptHandle { get; init; }
    public int? RetryAfterSeconds { get; init; }
}

public sealed record NackResponse(string ReceiptHandle, string State, DateTime? NextAttemptAt);

public sealed record ChangeInvisibilityRequest
{
    public string? ReceiptHandle { get; init; }
    public int? InvisibleSeconds { get; init; }
}

public sealed record ChangeInvisibilityResponse(string ReceiptHandle, DateTime VisibleAt);

public sealed record DeadLetterView(
    string MessageId,
    string Topic,
    string? Tag,
    string[] Keys,
    int Attempts,
    string? LastError,
    DateTime? DeadLetteredAt,
    DateTime BornAt);

public sealed record DeadLetterList(IReadOnlyList<DeadLetterView> DeadLetters, string? Next);

public sealed record RedriveRequest
{
    public string[]? MessageIds { get; init; }

    /// <summary>Why, for the audit trail (the <c>X-HalfMsg-Reason</c> header wins).</summary>
    public string? Reason { get; init; }
}

public sealed record RedriveResponse(int Redriven);

public sealed record DeleteResponse(int Deleted);

/// <summary>What the broker POSTs to a push subscription's url.</summary>
public sealed record PushBody(
    string MessageId,
    string Topic,
    string? Tag,
    string[] Keys,
    Dictionary<string, string>? Properties,
    RawJson Body,
    int Attempt,
    DateTime BornAt,
    string ConsumerGroup,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? OrderingKey = null);
