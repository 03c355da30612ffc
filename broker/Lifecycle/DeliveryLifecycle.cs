using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Lifecycle;

/// <summary>
/// Transitions of the per-group deliveries stored inside a message, and the message's "finished"
/// bookkeeping that retention relies on.
/// </summary>
public static class DeliveryLifecycle
{
    /// <summary>Fans a committed message out to every matching subscription of its topic.</summary>
    public static void FanOut(StoredMessage m, IEnumerable<Subscription> subscriptions)
    {
        foreach (var s in subscriptions)
        {
            if (!s.TagFilter.Matches(m.Tag) || m.DeliveryFor(s.Group) is not null) continue;
            m.Deliveries.Add(new StoredDelivery
            {
                Group = s.Group,
                State = DeliveryState.Pending,
                NextAttemptAt = m.DeliverAt,
            });
        }
    }

    public static bool Ack(StoredDelivery d, int attempts)
    {
        if (d.State.IsTerminal()) return false;
        d.State = DeliveryState.Acked;
        d.Attempts = Math.Max(d.Attempts, attempts);
        d.NextAttemptAt = 0;
        return true;
    }

    /// <summary>A failed attempt that will be retried: at <paramref name="nextAttemptAt"/>, or now when 0.</summary>
    public static bool Fail(StoredDelivery d, int attempts, string error, long nextAttemptAt)
    {
        if (d.State.IsTerminal()) return false;
        d.State = nextAttemptAt > 0 ? DeliveryState.Retrying : DeliveryState.Pending;
        d.Attempts = attempts;
        d.LastError = Truncate(error);
        d.NextAttemptAt = nextAttemptAt;
        return true;
    }

    public static bool Exhaust(StoredDelivery d, int attempts, string error, ExhaustedAction action, long now)
    {
        if (d.State.IsTerminal()) return false;
        d.State = action == ExhaustedAction.Discard ? DeliveryState.Discarded : DeliveryState.DeadLettered;
        d.Attempts = attempts;
        d.LastError = Truncate(error);
        d.NextAttemptAt = 0;
        d.DeadLetteredAt = action == ExhaustedAction.Discard ? 0 : now;
        return true;
    }

    /// <summary>Puts a dead letter back for delivery with a fresh attempt count.</summary>
    public static bool Redrive(StoredDelivery d)
    {
        if (d.State != DeliveryState.DeadLettered) return false;
        d.State = DeliveryState.Pending;
        d.Attempts = 0;
        d.NextAttemptAt = 0;
        d.DeadLetteredAt = 0;
        return true;
    }

    /// <summary>
    /// A replay delivers a finished delivery (acked, discarded or dead-lettered) again, with a fresh attempt
    /// count; one still to make (pending or retrying) is left as it is, so nothing is delivered twice at once.
    /// </summary>
    public static bool Replay(StoredDelivery d)
    {
        if (!d.State.IsTerminal()) return false;
        d.State = DeliveryState.Pending;
        d.Attempts = 0;
        d.NextAttemptAt = 0;
        d.DeadLetteredAt = 0;
        return true;
    }

    /// <summary>Retry-now: a delivery waiting for its retry backoff is due at once.</summary>
    public static bool RetryNow(StoredDelivery d)
    {
        if (d.State != DeliveryState.Retrying) return false;
        d.State = DeliveryState.Pending;
        d.NextAttemptAt = 0;
        return true;
    }

    /// <summary>An operator deleted the dead letter: the broker gives up on it for good.</summary>
    public static bool DeleteDeadLetter(StoredDelivery d)
    {
        if (d.State != DeliveryState.DeadLettered) return false;
        d.State = DeliveryState.Discarded;
        d.LastError = Truncate($"dead letter deleted by an operator; last error: {d.LastError}");
        d.DeadLetteredAt = 0;
        return true;
    }

    /// <summary>
    /// Retention gave up on a dead letter made before <paramref name="deadLetteredBefore"/>: as if an
    /// operator had deleted it.
    /// </summary>
    public static bool ExpireDeadLetter(StoredDelivery d, long deadLetteredBefore)
    {
        if (d.State != DeliveryState.DeadLettered || d.DeadLetteredAt >= deadLetteredBefore) return false;
        d.State = DeliveryState.Discarded;
        d.LastError = Truncate($"dead letter expired (Broker:Retention:DeadLetters); last error: {d.LastError}");
        d.DeadLetteredAt = 0;
        return true;
    }

    /// <summary>
    /// Sets or clears the purge time. A message is finished when it was rolled back, or when it is
    /// committed and every delivery is acked or discarded; a dead letter keeps it until redriven or deleted.
    /// </summary>
    public static void UpdateFinished(StoredMessage m, long now, TimeSpan retention)
    {
        var finished = m.State switch
        {
            MessageState.RolledBack => true,
            MessageState.Committed => m.Deliveries.TrueForAll(d => d.State is DeliveryState.Acked or DeliveryState.Discarded),
            _ => false,
        };
        if (!finished) m.PurgeAt = 0;
        else if (m.PurgeAt == 0) m.PurgeAt = now + (long)retention.TotalMilliseconds;
    }

    public static bool HasOpenDeliveries(StoredMessage m) =>
        m.State == MessageState.Committed && m.Deliveries.Exists(d => !d.State.IsTerminal());

    private static string Truncate(string error) => error.Length <= 500 ? error : error[..500];
}
