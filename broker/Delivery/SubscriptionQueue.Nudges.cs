namespace HalfMsgBroker.Delivery;

/// <summary>
/// Wake-ups for deliveries kept outside this queue (database rows shared by many brokers, <c>MultiActive</c>): the queue
/// then holds no entries, and its waiters (long polls, the push loop) are woken by a nudge: a notification that rows may
/// be ready, a due time reached, a safety poll. A nudge stays set until a claimer clears it right before looking, so a
/// nudge that lands between the look and the wait is not lost. This process's own queues are never nudged.
/// </summary>
internal sealed partial class SubscriptionQueue
{
    private bool _nudged;

    /// <summary>Rows may be ready: wakes every waiter, and the next wait returns at once.</summary>
    public void Nudge()
    {
        lock (_gate)
        {
            _nudged = true;
            Wake();
        }
    }

    /// <summary>Called right before looking for ready rows: a nudge after this one wakes the next wait.</summary>
    public void ClearNudge()
    {
        lock (_gate) _nudged = false;
    }
}
