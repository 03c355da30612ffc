using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Client;

/// <summary>
/// Settings of a background pull consumer (<c>AddPullConsumer</c>). Bind them from configuration
/// (<c>AddPullConsumer&lt;T, THandler&gt;(configuration.GetSection("HalfMsg:Consumers:Notifications"))</c>) or set
/// them in code; they are validated when the host starts.
/// </summary>
public sealed class PullConsumerOptions
{
    /// <summary>The consumer group. Required (given as an argument, or bound from configuration).</summary>
    public string? ConsumerGroup { get; set; }

    /// <summary>The topic. Required (given as an argument, or bound from configuration).</summary>
    public string? Topic { get; set; }

    /// <summary>Handlers running at once (1–1000; default 4). One receive asks for at most 100 messages.</summary>
    public int MaxConcurrency { get; set; } = 4;

    /// <summary>Invisibility of a received message, extended while its handler runs (1 s to 12 h; default 30 s).</summary>
    public TimeSpan InvisibleFor { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often a running handler's message is extended (above zero, below <see cref="InvisibleFor"/>); null for half of <see cref="InvisibleFor"/>.</summary>
    public TimeSpan? ExtendEvery { get; set; }

    /// <summary>Long-poll wait (0 to 30 s; default 20 s).</summary>
    public TimeSpan WaitTime { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Delay before a failed message comes back (0 to 12 h); null for the broker's backoff levels.</summary>
    public TimeSpan? RetryAfter { get; set; }

    /// <summary>PUT the pull subscription at start-up (default true), with <see cref="TagFilter"/>, <see cref="MaxAttempts"/> and <see cref="OnExhausted"/>.</summary>
    public bool EnsureSubscription { get; set; } = true;

    /// <summary>The subscription's tag filter: <c>*</c> or tags joined by <c>||</c>; null for all.</summary>
    public string? TagFilter { get; set; }

    /// <summary>Deliveries before a message is given up (1–1000); null for the broker's 16.</summary>
    public int? MaxAttempts { get; set; }

    /// <summary>What happens to a message given up: dead-letter (the broker's default) or discard.</summary>
    public ExhaustedAction? OnExhausted { get; set; }

    internal TimeSpan EffectiveExtendEvery => ExtendEvery ?? TimeSpan.FromTicks(InvisibleFor.Ticks / 2);

    internal SubscriptionRequest ToSubscription() => new(TagFilter, Push: null, MaxAttempts, OnExhausted);
}

/// <summary>Checks <see cref="PullConsumerOptions"/> against the broker's limits when the host starts.</summary>
internal sealed class PullConsumerOptionsValidator : IValidateOptions<PullConsumerOptions>
{
    public ValidateOptionsResult Validate(string? name, PullConsumerOptions options)
    {
        var where = $"Pull consumer '{name}': ";
        var errors = new List<string>();
        if (string.IsNullOrEmpty(options.ConsumerGroup))
        {
            errors.Add(where + "ConsumerGroup is required (the consumer group the subscription belongs to).");
        }

        if (string.IsNullOrEmpty(options.Topic))
        {
            errors.Add(where + "Topic is required.");
        }

        if (options.MaxConcurrency is < 1 or > 1000)
        {
            errors.Add(where + $"MaxConcurrency must be between 1 and 1000 (got {options.MaxConcurrency}).");
        }

        if (options.InvisibleFor < HalfMsgLimits.MinInvisibleFor || options.InvisibleFor > HalfMsgLimits.MaxInvisibleFor)
        {
            errors.Add(where + $"InvisibleFor must be between 1 s and 12 h, the broker's limits (got {options.InvisibleFor}).");
        }

        if (options.EffectiveExtendEvery <= TimeSpan.Zero || options.EffectiveExtendEvery >= options.InvisibleFor)
        {
            errors.Add(where + $"ExtendEvery must be above zero and below InvisibleFor ({options.InvisibleFor}), or the message becomes visible while its handler runs (got {options.EffectiveExtendEvery}).");
        }

        if (options.WaitTime < TimeSpan.Zero || options.WaitTime > HalfMsgLimits.MaxWaitTime)
        {
            errors.Add(where + $"WaitTime must be between 0 and 30 s, the broker's long-poll limit (got {options.WaitTime}).");
        }

        if (options.RetryAfter is { } retry && (retry < TimeSpan.Zero || retry > HalfMsgLimits.MaxNackDelay))
        {
            errors.Add(where + $"RetryAfter must be between 0 and 12 h, the broker's nack limit (got {retry}).");
        }

        if (options.MaxAttempts is { } attempts && (attempts < 1 || attempts > HalfMsgLimits.MaxDeliveryAttempts))
        {
            errors.Add(where + $"MaxAttempts must be between 1 and {HalfMsgLimits.MaxDeliveryAttempts} (got {attempts}).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
