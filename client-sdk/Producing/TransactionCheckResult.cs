namespace HalfMsgBroker.Client;

/// <summary>
/// What an <see cref="ITransactionChecker"/> answers to a check-back: a <see cref="LocalTransactionState"/>,
/// and for <see cref="LocalTransactionState.Unknown"/> optionally when to ask again.
/// A <see cref="LocalTransactionState"/> converts to it implicitly.
/// </summary>
public sealed record TransactionCheckResult
{
    private TransactionCheckResult(LocalTransactionState state, TimeSpan? retryAfter)
    {
        State = state;
        RetryAfter = retryAfter;
    }

    /// <summary>Commit, rollback or unknown.</summary>
    public LocalTransactionState State { get; }

    /// <summary>
    /// For an unknown answer made with <see cref="AskAgainIn"/>: when the broker should check again.
    /// Such an answer does not use up one of the broker's <c>MaxChecks</c> (the broker caps the wait at
    /// its <c>Broker:Transactions:MaxRetryAfter</c>, and still gives up after <c>MaxPendingTime</c>).
    /// Null otherwise: the broker asks again after its <c>CheckInterval</c>, spending a check.
    /// </summary>
    public TimeSpan? RetryAfter { get; }

    /// <summary>The local transaction committed: deliver the message.</summary>
    public static TransactionCheckResult Commit { get; } = new(LocalTransactionState.Commit, null);

    /// <summary>The local transaction rolled back: drop the message.</summary>
    public static TransactionCheckResult Rollback { get; } = new(LocalTransactionState.Rollback, null);

    /// <summary>Not known (yet): the broker asks again after its check interval, spending one of its checks.</summary>
    public static TransactionCheckResult Unknown { get; } = new(LocalTransactionState.Unknown, null);

    /// <summary>
    /// "Still running, ask again in <paramref name="delay"/>": unknown, without spending one of the
    /// broker's checks. Sent as <c>{"state": "unknown", "retryAfterSeconds": N}</c>, N rounded up to whole seconds.
    /// </summary>
    /// <param name="delay">At least one second.</param>
    /// <returns>The answer.</returns>
    /// <exception cref="ArgumentOutOfRangeException">When <paramref name="delay"/> is under one second.</exception>
    public static TransactionCheckResult AskAgainIn(TimeSpan delay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.FromSeconds(1));
        return new(LocalTransactionState.Unknown, delay);
    }

    /// <summary>The answer with that state (and no retry-after).</summary>
    /// <param name="state">The state.</param>
    public static implicit operator TransactionCheckResult(LocalTransactionState state) => FromState(state);

    /// <summary>The answer with that state (and no retry-after).</summary>
    /// <param name="state">The state.</param>
    /// <returns>The answer.</returns>
    public static TransactionCheckResult FromState(LocalTransactionState state) => state switch
    {
        LocalTransactionState.Commit => Commit,
        LocalTransactionState.Rollback => Rollback,
        _ => Unknown,
    };

    /// <summary>Seconds to send as <c>retryAfterSeconds</c>, or null.</summary>
    internal int? RetryAfterSeconds => RetryAfter is { } after ? (int)Math.Min(int.MaxValue, Math.Ceiling(after.TotalSeconds)) : null;
}
