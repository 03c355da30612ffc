namespace HalfMsgBroker.Delivery;

/// <summary>
/// Ordered delivery: per ordering key, a lane of the key's live deliveries in commit order. Only the
/// lane's first entry takes part in delivery (ready, waiting for a due time or backoff, in flight); the
/// rest are <see cref="EntryPhase.Blocked"/> until it leaves the queue (acked, dead-lettered, discarded),
/// so a key's messages go out one at a time and in order, while other keys and unkeyed messages flow as
/// before. Unkeyed deliveries never touch the lanes: the hot path pays one null check on add and remove.
/// </summary>
internal sealed partial class SubscriptionQueue
{
    private Dictionary<string, LinkedList<DeliveryEntry>>? _lanes;
    private int _blocked;

    /// <summary>How many keys have a lane (a delivery live) right now.</summary>
    public int OrderingKeys
    {
        get { lock (_gate) return _lanes?.Count ?? 0; }
    }

    /// <summary>
    /// Puts a keyed entry in its key's lane. True when it is the lane's first and goes on as any delivery;
    /// false when it is blocked behind an earlier one. An entry coming back with a place before entries
    /// already waiting (a redrive, a replay) goes before them, but never before the first: that one may be
    /// handed out already.
    /// </summary>
    private bool EnterLaneLocked(DeliveryEntry entry, long dueAt)
    {
        _lanes ??= new Dictionary<string, LinkedList<DeliveryEntry>>(StringComparer.Ordinal);
        if (!_lanes.TryGetValue(entry.OrderingKey!, out var lane))
        {
            lane = new LinkedList<DeliveryEntry>();
            lane.AddLast(entry);
            _lanes.Add(entry.OrderingKey!, lane);
            return true;
        }

        var after = lane.Last!;
        while (after != lane.First && after.Value.CommitSeq > entry.CommitSeq) after = after.Previous!;
        lane.AddAfter(after, entry);
        entry.Phase = EntryPhase.Blocked;
        entry.DueAt = dueAt;
        _blocked++;
        return false;
    }

    /// <summary>An entry left the queue: if it was its lane's first, the next one (if any) takes its turn.</summary>
    private void LeaveLaneLocked(DeliveryEntry entry)
    {
        if (_lanes is null || !_lanes.TryGetValue(entry.OrderingKey!, out var lane)) return;
        var wasFirst = lane.First?.Value == entry;
        if (!lane.Remove(entry)) return;
        if (lane.First is not { } next)
        {
            _lanes.Remove(entry.OrderingKey!);
            return;
        }
        if (!wasFirst || next.Value.Phase != EntryPhase.Blocked) return;

        var turn = next.Value;
        _blocked--;
        turn.Version++;
        if (turn.DueAt > scheduler.Now) Wait(turn, turn.DueAt);
        else MakeReady(turn);
    }
}
