using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Delivery;

internal enum SettleOutcome
{
    Done,
    Stale,
}

internal readonly record struct QueueCounts(int Ready, int InFlight, int Retrying);

/// <summary>
/// The live deliveries of one subscription (consumer group × topic): a FIFO of ready entries, the
/// entries in flight, and those waiting for a due time. Long-poll receivers and the push
/// dispatcher wait on a signal raised when an entry becomes ready, never by polling storage.
/// </summary>
internal sealed class SubscriptionQueue(Subscription subscription, DueScheduler scheduler, PayloadBudget budget, Func<IDeliveryRecorder> recorder)
{
    private readonly Lock _gate = new();
    private readonly LinkedList<DeliveryEntry> _ready = new();
    private readonly Dictionary<Guid, DeliveryEntry> _live = [];
    private TaskCompletionSource? _readySignal;
    private int _inFlight;
    private int _waiting;
    private int _receivers;
    private bool _closed;

    /// <summary>How many long polls (or push dispatchers) are waiting on this queue right now.</summary>
    public int WaitingReceivers => Volatile.Read(ref _receivers);

    public Subscription Subscription { get; set; } = subscription;
    public string Group => Subscription.Group;
    public string Topic => Subscription.Topic;

    /// <summary>Adds a delivery that is new, recovered after a restart, or redriven.</summary>
    public DeliveryEntry? Add(Guid messageId, int attempts, long dueAt, MessagePayload? payload, long now)
    {
        var entry = new DeliveryEntry(messageId, this) { Attempts = attempts };
        lock (_gate)
        {
            if (_closed || !_live.TryAdd(messageId, entry)) return null;
            if (payload is not null && budget.TryReserve(payload.ApproximateBytes)) entry.Payload = payload;
            if (dueAt > now) Wait(entry, dueAt);
            else MakeReady(entry);
        }
        return entry;
    }

    /// <summary>
    /// Hands out up to <paramref name="max"/> ready entries. With <paramref name="invisibleUntil"/>
    /// (pull) each becomes visible again then unless settled; without it (push) the caller settles it.
    /// </summary>
    public void Take(int max, long? invisibleUntil, List<Lease> into)
    {
        lock (_gate)
        {
            while (into.Count < max && _ready.First is { } node)
            {
                _ready.RemoveFirst();
                var entry = node.Value;
                entry.Phase = EntryPhase.InFlight;
                entry.Attempts++;
                entry.Nonce = (ulong)Random.Shared.NextInt64() ^ (ulong)entry.Version;
                entry.Version++;
                _inFlight++;
                if (invisibleUntil is { } until)
                {
                    entry.DueAt = until;
                    scheduler.Schedule(entry, entry.Version, until);
                }
                into.Add(new Lease(entry, entry.Nonce, entry.Attempts));
            }
        }
    }

    public bool IsClosed
    {
        get { lock (_gate) return _closed; }
    }

    public bool HasReady
    {
        get { lock (_gate) return _ready.Count > 0; }
    }

    /// <summary>Completes when an entry may be ready, or after <paramref name="timeout"/>; false on timeout.</summary>
    public async Task<bool> WaitForReadyAsync(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        Task signal;
        lock (_gate)
        {
            if (_ready.Count > 0 || _closed) return true;
            _readySignal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            signal = _readySignal.Task;
        }
        if (timeout == Timeout.InfiniteTimeSpan)
        {
            await signal.WaitAsync(cancellationToken);
            return true;
        }
        // An idle long poll ends often; ending it with a timer instead of a TimeoutException keeps it cheap.
        using var timer = new CancellationTokenSource(timeout, time);
        using var timeoutOrCancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
        Interlocked.Increment(ref _receivers);
        try
        {
            var woken = await Task.WhenAny(signal, Task.Delay(Timeout.InfiniteTimeSpan, timeoutOrCancel.Token)) == signal;
            cancellationToken.ThrowIfCancellationRequested();
            return woken;
        }
        finally
        {
            Interlocked.Decrement(ref _receivers);
        }
    }

    public SettleOutcome Ack(Guid messageId, ulong nonce, out int attempts)
    {
        lock (_gate)
        {
            attempts = 0;
            if (!TryGetLeased(messageId, nonce, out var entry)) return SettleOutcome.Stale;
            attempts = entry.Attempts;
            Finish(entry);
            return SettleOutcome.Done;
        }
    }

    /// <summary>An ack whose store write failed: the delivery goes back to the group.</summary>
    public void Restore(Guid messageId, int attempts, long now) => Add(messageId, attempts, now, null, now);

    /// <summary>Back to the group after <paramref name="retryAt"/> (0: the next backoff level).</summary>
    public SettleOutcome Nack(Guid messageId, ulong nonce, long retryAt, TimeSpan backoff, long now, out DeliveryState state, out long nextAttemptAt)
    {
        lock (_gate)
        {
            state = DeliveryState.InFlight;
            nextAttemptAt = 0;
            if (!TryGetLeased(messageId, nonce, out var entry)) return SettleOutcome.Stale;
            var due = retryAt > 0 ? retryAt : now + (long)backoff.TotalMilliseconds;
            state = FailLocked(entry, "nacked by the consumer", due, now);
            nextAttemptAt = state == DeliveryState.Retrying ? due : 0;
            return SettleOutcome.Done;
        }
    }

    public SettleOutcome ChangeInvisibility(Guid messageId, ulong nonce, long visibleAt)
    {
        lock (_gate)
        {
            if (!TryGetLeased(messageId, nonce, out var entry)) return SettleOutcome.Stale;
            entry.Version++;
            entry.DueAt = visibleAt;
            scheduler.Schedule(entry, entry.Version, visibleAt);
            return SettleOutcome.Done;
        }
    }

    /// <summary>A push attempt got a 2xx: the caller writes the ack.</summary>
    public void PushSucceeded(DeliveryEntry entry)
    {
        lock (_gate)
        {
            if (entry.Phase == EntryPhase.InFlight) Finish(entry);
        }
    }

    public DeliveryState PushFailed(DeliveryEntry entry, string error, TimeSpan backoff, long now)
    {
        lock (_gate)
        {
            if (entry.Phase != EntryPhase.InFlight) return DeliveryState.Acked;
            return FailLocked(entry, error, now + (long)backoff.TotalMilliseconds, now);
        }
    }

    /// <summary>Called by the scheduler when a due time set for <paramref name="version"/> arrives.</summary>
    public void OnDue(DeliveryEntry entry, long version, long now, TimeSpan backoff)
    {
        lock (_gate)
        {
            if (entry.Version != version || _closed) return;
            if (entry.Phase == EntryPhase.Waiting)
            {
                _waiting--;
                MakeReady(entry);
            }
            else if (entry.Phase == EntryPhase.InFlight)
            {
                // Visibility ran out: visible again at once (the attempt already counted).
                FailLocked(entry, "not acked before its visibility timeout", 0, now);
            }
        }
    }

    public QueueCounts Counts()
    {
        lock (_gate) return new QueueCounts(_ready.Count, _inFlight, _waiting);
    }

    public (EntryPhase Phase, int Attempts, long DueAt)? Peek(Guid messageId)
    {
        lock (_gate)
        {
            return _live.TryGetValue(messageId, out var e) ? (e.Phase, e.Attempts, e.DueAt) : null;
        }
    }

    /// <summary>Stops the queue (its subscription was deleted) and returns the ids it still held.</summary>
    public List<Guid> Close()
    {
        lock (_gate)
        {
            _closed = true;
            var ids = _live.Keys.ToList();
            foreach (var e in _live.Values) RemoveLockedKeepIndex(e);
            _live.Clear();
            _ready.Clear();
            _inFlight = _waiting = 0;
            _readySignal?.TrySetResult();
            return ids;
        }
    }

    private DeliveryState FailLocked(DeliveryEntry entry, string error, long retryAt, long now)
    {
        _inFlight--;
        var sub = Subscription;
        if (entry.Attempts >= sub.MaxAttempts)
        {
            var attempts = entry.Attempts;
            RemoveLocked(entry);
            recorder().Exhausted(entry, attempts, $"{error} (attempt {attempts} of {sub.MaxAttempts})");
            return sub.OnExhausted == ExhaustedAction.Discard ? DeliveryState.Discarded : DeliveryState.DeadLettered;
        }

        entry.Version++;
        if (retryAt > now)
        {
            Wait(entry, retryAt);
            recorder().AttemptFailed(entry, entry.Attempts, error, retryAt);
            return DeliveryState.Retrying;
        }
        MakeReady(entry);
        recorder().AttemptFailed(entry, entry.Attempts, error, 0);
        return DeliveryState.Pending;
    }

    private bool TryGetLeased(Guid messageId, ulong nonce, out DeliveryEntry entry) =>
        _live.TryGetValue(messageId, out entry!) && entry.Phase == EntryPhase.InFlight && entry.Nonce == nonce;

    private void Finish(DeliveryEntry entry)
    {
        _inFlight--;
        RemoveLocked(entry);
    }

    private void RemoveLocked(DeliveryEntry entry)
    {
        entry.Phase = EntryPhase.Done;
        entry.Version++;
        if (entry.Payload is { } payload) budget.Release(payload.ApproximateBytes);
        entry.Payload = null;
        _live.Remove(entry.MessageId);
    }

    private void RemoveLockedKeepIndex(DeliveryEntry entry)
    {
        entry.Phase = EntryPhase.Done;
        entry.Version++;
        if (entry.Payload is { } payload) budget.Release(payload.ApproximateBytes);
        entry.Payload = null;
    }

    private void Wait(DeliveryEntry entry, long dueAt)
    {
        entry.Phase = EntryPhase.Waiting;
        entry.DueAt = dueAt;
        _waiting++;
        scheduler.Schedule(entry, entry.Version, dueAt);
    }

    private void MakeReady(DeliveryEntry entry)
    {
        entry.Phase = EntryPhase.Ready;
        entry.DueAt = 0;
        _ready.AddLast(entry);
        if (_readySignal is { } signal)
        {
            _readySignal = null;
            signal.TrySetResult();
        }
    }
}
