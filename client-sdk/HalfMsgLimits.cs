namespace HalfMsgBroker.Client;

/// <summary>
/// The broker's limits (HTTP API v1), which the SDK checks before it sends: a value outside them throws
/// <see cref="ArgumentOutOfRangeException"/> at the call instead of a 400 from the broker, and nothing is
/// clamped silently. Durations travel in whole seconds (or milliseconds); a fraction is rounded up.
/// </summary>
public static class HalfMsgLimits
{
    /// <summary>Longest <c>Delay</c> of a plain send, and latest <c>DeliverAt</c> ahead (24 h).</summary>
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(86_400);

    /// <summary>Longest check immunity of a half message (24 h).</summary>
    public static readonly TimeSpan MaxCheckImmunity = TimeSpan.FromSeconds(86_400);

    /// <summary>Longest long-poll wait of a receive (30 s).</summary>
    public static readonly TimeSpan MaxWaitTime = TimeSpan.FromSeconds(30);

    /// <summary>Shortest invisibility of a received message (1 s).</summary>
    public static readonly TimeSpan MinInvisibleFor = TimeSpan.FromSeconds(1);

    /// <summary>Longest invisibility of a received message, on receive and change-invisibility (12 h).</summary>
    public static readonly TimeSpan MaxInvisibleFor = TimeSpan.FromSeconds(43_200);

    /// <summary>Longest retry delay of a nack (12 h).</summary>
    public static readonly TimeSpan MaxNackDelay = TimeSpan.FromSeconds(43_200);

    /// <summary>Shortest check or push timeout (100 ms).</summary>
    public static readonly TimeSpan MinCallTimeout = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest check or push timeout (60 s).</summary>
    public static readonly TimeSpan MaxCallTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Most messages one receive returns.</summary>
    public const int MaxReceiveMessages = 100;

    /// <summary>Most messages (plain or half) in one batch send.</summary>
    public const int MaxBatchMessages = 100;

    /// <summary>Most transaction ids in one batch commit or rollback.</summary>
    public const int MaxBatchTransactionIds = 1000;

    /// <summary>Most receipt handles in one ack.</summary>
    public const int MaxAckHandles = 1000;

    /// <summary>Most deliveries of a subscription's message before it is given up (<c>maxAttempts</c>).</summary>
    public const int MaxDeliveryAttempts = 1000;

    /// <summary>Largest page of a listing (transactions, dead letters).</summary>
    public const int MaxPageSize = 1000;

    /// <summary>Whole seconds as sent on the wire: a fraction rounds up.</summary>
    internal static int WholeSeconds(TimeSpan value) => (int)Math.Min(int.MaxValue, Math.Ceiling(value.TotalSeconds));

    /// <summary>Whole milliseconds as sent on the wire: a fraction rounds up.</summary>
    internal static int WholeMilliseconds(TimeSpan value) => (int)Math.Min(int.MaxValue, Math.Ceiling(value.TotalMilliseconds));

    /// <summary>Throws unless <paramref name="value"/>, rounded up to whole seconds, lies in [min, max].</summary>
    internal static void ThrowIfOutside(TimeSpan value, TimeSpan min, TimeSpan max, string paramName)
    {
        if (value < min || TimeSpan.FromSeconds(WholeSeconds(value)) > max)
        {
            throw new ArgumentOutOfRangeException(paramName, value, $"{paramName} must be between {Describe(min)} and {Describe(max)} (the broker's limit); got {value}.");
        }
    }

    /// <summary>Throws unless <paramref name="value"/>, rounded up to whole milliseconds, lies in [min, max].</summary>
    internal static void ThrowIfOutsideMs(TimeSpan value, TimeSpan min, TimeSpan max, string paramName)
    {
        if (value < min || TimeSpan.FromMilliseconds(WholeMilliseconds(value)) > max)
        {
            throw new ArgumentOutOfRangeException(paramName, value, $"{paramName} must be between {Describe(min)} and {Describe(max)} (the broker's limit); got {value}.");
        }
    }

    /// <summary>Throws unless <paramref name="value"/> lies in [min, max].</summary>
    internal static void ThrowIfOutside(int value, int min, int max, string paramName)
    {
        if (value < min || value > max)
        {
            throw new ArgumentOutOfRangeException(paramName, value, $"{paramName} must be between {min} and {max} (the broker's limit); got {value}.");
        }
    }

    /// <summary>Throws unless a batch has 1 to <paramref name="max"/> items.</summary>
    internal static void ThrowIfBatchSize(int count, int max, string paramName)
    {
        if (count < 1 || count > max)
        {
            throw new ArgumentOutOfRangeException(paramName, count, $"{paramName} must hold 1 to {max} items (the broker's limit); got {count}.");
        }
    }

    internal static string Describe(TimeSpan value) =>
        value == TimeSpan.Zero || (value.TotalSeconds >= 1 && value.Milliseconds == 0)
            ? value.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) + " s"
            : value.TotalMilliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture) + " ms";
}
