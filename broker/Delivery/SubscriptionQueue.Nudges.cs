namespace HalfMsgBroker.Delivery;

/// <summary>
/// Wake-ups for deliveries kept outside this queue (database rows shared by many brokers, <c>MultiActive</c>): the queue
/// then holds no entries, and its waiters (long polls, the push loop) are woken by a nudge: a notification that rows may
/// be ready, a due time reached, a safety poll. A nudge stays set until a claimer clears it right before looking, so a
/// nudge that lands between the look and the wait is not lost. This process's own queues are never nudged.
/// A nudge wakes every waiter, but one look that came back short (fewer rows than it asked for) took all that the nudges
/// before it announced: the others, woken by the same nudges, go back to waiting instead of each running a claim that
/// finds nothing (<see cref="NothingNewSinceShortLook"/>).
/// </summary>
internal sealed partial class SubscriptionQueue
{
    private bool _nudged;
    private long _nudges;
    private long _shortLookCovered = -1;
    private SemaphoreSlim? _looks;

    /// <summary>
    /// Held while one of this broker's receives looks for rows, so waiters woken by one nudge look one after another and
    /// each sees whether the one before came back short.
    /// </summary>
    public SemaphoreSlim Looks => LazyInitializer.EnsureInitialized(ref _looks, () => new SemaphoreSlim(1, 1));

    /// <summary>Rows may be ready: wakes every waiter, and the next wait returns at once.</summary>
    public void Nudge()
    {
        lock (_gate)
        {
            _nudged = true;
            _nudges++;
            Wake();
        }
    }

    /// <summary>
    /// Called right before looking for ready rows: a nudge after this one wakes the next wait. Returns how many nudges
    /// the look covers (what <see cref="LookedShort"/> is told).
    /// </summary>
    public long ClearNudge()
    {
        lock (_gate)
        {
            _nudged = false;
            return _nudges;
        }
    }

    /// <summary>
    /// A look begun after <paramref name="covered"/> nudges came back short: every row they announced was committed before
    /// it began, so it took them, or another claimer holds them (<c>SKIP LOCKED</c>).
    /// </summary>
    public void LookedShort(long covered)
    {
        lock (_gate) _shortLookCovered = Math.Max(_shortLookCovered, covered);
    }

    /// <summary>No nudge came since a look that came back short began: a waiter woken meanwhile has nothing new to look for.</summary>
    public bool NothingNewSinceShortLook
    {
        get
        {
            lock (_gate) return _shortLookCovered >= _nudges;
        }
    }
}
