using HalfMsgBroker.Configuration;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Lifecycle;

public enum EndOutcome
{
    /// <summary>The message moved from prepared to the requested end.</summary>
    Applied,

    /// <summary>It was already in the requested end: an idempotent replay.</summary>
    AlreadyEnded,

    /// <summary>It ended the other way; the request contradicts stored state.</summary>
    Conflict,
}

public enum CheckOutcome
{
    /// <summary>The answer came too late: the transaction ended, or a newer check was issued.</summary>
    Ignored,
    Committed,
    RolledBack,
    StillPrepared,
    Exhausted,
}

/// <summary>
/// Every transition of a half message, in one place. Transitions only move from the state they
/// expect; each returns what happened so the caller can answer the client and publish effects.
/// </summary>
public static class TransactionLifecycle
{
    public static EndOutcome End(StoredMessage m, bool commit, ResolvedBy by, long now)
    {
        var target = commit ? MessageState.Committed : MessageState.RolledBack;
        if (m.State == target) return EndOutcome.AlreadyEnded;
        if (m.State != MessageState.Prepared) return EndOutcome.Conflict;

        m.State = target;
        m.ResolvedBy = by;
        m.ResolvedAt = now;
        // The commit moves the message out of the check queue (to the open one): the check range then holds
        // only prepared messages, so recovery finds the open ones without reading any prepared one. Under
        // load the move costs nothing: the half message, its commit and its ack reach LiteDB as one insert.
        m.FiledCheckAt = 0;
        m.NextCheckAt = 0;
        return EndOutcome.Applied;
    }

    /// <summary>Marks a check as issued: the next one is due an interval later unless an answer ends it.</summary>
    public static void BeginCheck(StoredMessage m, long now, TimeSpan interval)
    {
        m.CheckCount++;
        m.LastCheckAt = now;
        m.NextCheckAt = now + (long)interval.TotalMilliseconds;
    }

    /// <summary>A due check that cannot be sent yet moves to <paramref name="until"/>; its count does not change.</summary>
    public static bool DeferCheck(StoredMessage m, long now, long until)
    {
        if (m.State != MessageState.Prepared || m.NextCheckAt > now || until <= m.NextCheckAt) return false;
        m.NextCheckAt = until;
        return true;
    }

    public static bool IsExhausted(StoredMessage m, int maxChecks) => m.CheckCount >= maxChecks;

    /// <summary>Out of checks, or prepared for longer than <see cref="TransactionOptions.MaxPendingTime"/>.</summary>
    public static bool IsExhausted(StoredMessage m, long now, TransactionOptions rules) =>
        IsExhausted(m, rules.MaxChecks) || now >= PendingDeadline(m, rules);

    private static long PendingDeadline(StoredMessage m, TransactionOptions rules) =>
        m.BornAt + (long)Math.Min(rules.MaxPendingTime.TotalMilliseconds, long.MaxValue / 4);

    /// <summary>
    /// Applies the answer to check number <paramref name="checkNumber"/>. A producer that could not be
    /// reached gives the check back (offline is not a "no") and is asked again after a backoff that
    /// doubles from <see cref="FirstUnreachableRetry"/> up to the check interval; every other
    /// non-final answer spends it — except an unknown that asks to be checked again after
    /// <paramref name="retryAfter"/> ("still running"): that is honoured, up to
    /// <see cref="TransactionOptions.MaxRetryAfter"/>, and gives the check back too. Either way the
    /// transaction ends as checkExhausted once it has been prepared for
    /// <see cref="TransactionOptions.MaxPendingTime"/>.
    /// </summary>
    public static CheckOutcome ApplyCheckAnswer(
        StoredMessage m, int checkNumber, CheckAnswer answer, string resultText, long now, TransactionOptions rules,
        TimeSpan? retryAfter = null)
    {
        if (m.State != MessageState.Prepared || m.CheckCount != checkNumber) return CheckOutcome.Ignored;

        m.LastCheckResult = resultText;
        long delayMs;
        switch (answer)
        {
            case CheckAnswer.Commit:
                End(m, commit: true, ResolvedBy.Check, now);
                return CheckOutcome.Committed;
            case CheckAnswer.Rollback:
                End(m, commit: false, ResolvedBy.Check, now);
                return CheckOutcome.RolledBack;
            case CheckAnswer.Unreachable:
                m.CheckCount--;
                m.UnreachableCount++;
                m.UnreachableStreak++;
                delayMs = UnreachableBackoffMs(m.UnreachableStreak, rules.CheckInterval);
                break;
            case CheckAnswer.Unknown when retryAfter is { } after:
                m.CheckCount--;
                m.UnknownCount++;
                m.UnreachableStreak = 0;
                delayMs = (long)Math.Min(after.TotalMilliseconds, rules.MaxRetryAfter.TotalMilliseconds);
                break;
            default:
                m.UnknownCount++;
                m.UnreachableStreak = 0;
                delayMs = (long)rules.CheckInterval.TotalMilliseconds;
                break;
        }
        if (IsExhausted(m, now, rules))
        {
            End(m, commit: false, ResolvedBy.CheckExhausted, now);
            return CheckOutcome.Exhausted;
        }
        // Never past the deadline: the transaction ends when its time is up, not a backoff later.
        m.NextCheckAt = Math.Min(now + delayMs, PendingDeadline(m, rules));
        return CheckOutcome.StillPrepared;
    }

    /// <summary>The first retry after a producer could not be reached; each one after waits twice as long.</summary>
    public static readonly TimeSpan FirstUnreachableRetry = TimeSpan.FromSeconds(1);

    private static long UnreachableBackoffMs(int streak, TimeSpan cap)
    {
        var backoff = FirstUnreachableRetry.TotalMilliseconds * Math.Pow(2, Math.Min(streak - 1, 30));
        return (long)Math.Min(backoff, cap.TotalMilliseconds);
    }

    /// <summary>A due message that has used up its checks or its pending time is rolled back without another call.</summary>
    public static bool ExhaustIfOutOfChecks(StoredMessage m, long now, TransactionOptions rules)
    {
        if (m.State != MessageState.Prepared || !IsExhausted(m, now, rules)) return false;
        End(m, commit: false, ResolvedBy.CheckExhausted, now);
        return true;
    }
}
