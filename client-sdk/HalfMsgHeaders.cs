namespace HalfMsgBroker.Client;

/// <summary>Header names the broker and the SDK exchange.</summary>
public static class HalfMsgHeaders
{
    /// <summary>Makes a retried plain send return the first message.</summary>
    public const string IdempotencyKey = "Idempotency-Key";

    /// <summary>Unix seconds at which the broker signed an outbound call.</summary>
    public const string Timestamp = "HalfMsg-Timestamp";

    /// <summary><c>v1=&lt;hex&gt;</c> and <c>v2=&lt;hex&gt;</c> values, comma-separated, one per secret (see <see cref="HalfMsgSignature"/>).</summary>
    public const string Signature = "HalfMsg-Signature";

    /// <summary>The message id of a push delivery or a check-back, bound into <c>v2=</c> signatures.</summary>
    public const string MessageId = "HalfMsg-Message-Id";

    /// <summary>The attempt number of a push delivery.</summary>
    public const string Attempt = "HalfMsg-Attempt";

    /// <summary>The consumer group of a push delivery.</summary>
    public const string ConsumerGroup = "HalfMsg-Consumer-Group";
}
