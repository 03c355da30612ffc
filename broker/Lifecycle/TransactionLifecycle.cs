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

    /// <summary>Applies the answer to check number <paramref name="checkNumber"/>.</summary>
    public static CheckOutcome ApplyCheckAnswer(
        StoredMessage m, int checkNumber, CheckAnswer answer, string resultText, long now, int maxChecks)
    {
        if (m.State != MessageState.Prepared || m.CheckCount != checkNumber) return CheckOutcome.Ignored;

        m.LastCheckResult = resultText;
        switch (answer)
        {
            case CheckAnswer.Commit:
                End(m, commit: true, ResolvedBy.Check, now);
                return CheckOutcome.Committed;
            case CheckAnswer.Rollback:
                End(m, commit: false, ResolvedBy.Check, now);
                return CheckOutcome.RolledBack;
            default:
                if (!IsExhausted(m, maxChecks)) return CheckOutcome.StillPrepared;
                End(m, commit: false, ResolvedBy.CheckExhausted, now);
                return CheckOutcome.Exhausted;
        }
    }

    /// <summary>A due message that has used up its checks is rolled back without another call.</summary>
    public static bool ExhaustIfOutOfChecks(StoredMessage m, long now, int maxChecks)
    {
        if (m.State != MessageState.Prepared || !IsExhausted(m, maxChecks)) return false;
        End(m, commit: false, ResolvedBy.CheckExhausted, now);
        return true;
    }
}
