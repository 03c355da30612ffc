namespace HalfMsgBroker.Storage;

/// <summary>
/// What the timers read: due check-backs, due purges, expired dead letters, and the open messages
/// recovery reloads. Every query is an index range in due-time order, never a scan, so a timer asks
/// "what is due now" and "when is the next one".
/// </summary>
public interface IDueTimes
{
    /// <summary>
    /// Prepared messages whose next check is due, earliest first (an index range, not a scan), or the
    /// latest due first: what came due last, behind a backlog the check-back loop is still planning.
    /// </summary>
    IReadOnlyList<StoredMessage> DueChecks(long now, int limit, bool latestFirst = false);

    /// <summary>When the earliest prepared message is due for a check, or null when none is prepared.</summary>
    long? EarliestCheckDue();

    /// <summary>Finished messages whose retention ran out, earliest first.</summary>
    IReadOnlyList<Guid> DuePurges(long now, int limit);

    /// <summary>Dead letters made before <paramref name="deadLetteredBefore"/>, earliest first (an index range).</summary>
    IReadOnlyList<DeadLetterRef> ExpiredDeadLetters(long deadLetteredBefore, int limit);

    /// <summary>
    /// Committed messages with deliveries still to make, without their bodies: what recovery reloads
    /// after a restart. Read in chunks of the open range, so memory does not grow with their number.
    /// </summary>
    IEnumerable<OpenMessage> OpenMessages();
}
