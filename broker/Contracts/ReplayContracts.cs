namespace HalfMsgBroker.Contracts;

public sealed record ReplayRequest
{
    /// <summary>RFC 3339 time: messages committed at or after it are delivered again.</summary>
    public string? From { get; init; }

    /// <summary>Why, for the audit trail (or the <c>X-HalfMsg-Reason</c> header).</summary>
    public string? Reason { get; init; }
}

public sealed record ReplayResponse(int Replayed);

public sealed record RetryNowRequest
{
    /// <summary>Only these messages' retries; absent: every retrying delivery of the subscription.</summary>
    public string[]? MessageIds { get; init; }

    /// <summary>Why, for the audit trail (or the <c>X-HalfMsg-Reason</c> header).</summary>
    public string? Reason { get; init; }
}

public sealed record RetryNowResponse(int Retried);
