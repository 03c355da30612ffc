namespace HalfMsgBroker.Access;

/// <summary>
/// Records changes an operator wants to trace (keys, producer groups, subscriptions, dead-letter
/// redrive and delete, transactions ended by an admin key), with who made them. Written after the
/// change is stored: a crash in between loses the entry, never the change.
/// </summary>
internal sealed class AuditLog(IAccessStore store, TimeProvider time, ILogger<AuditLog> logger)
{
    public void Record(Caller caller, string action, string target, string? detail = null)
    {
        try
        {
            store.Append(time.GetUtcNow().ToUnixTimeMilliseconds(), caller.Name, action, target, detail);
        }
        catch (Exception e)
        {
            // The change itself is stored and answered; losing its audit line must not turn it into a 500.
            logger.LogError(e, "Writing the audit entry {Action} {Target} by {Actor} failed", action, target, caller.Name);
        }
    }
}
