using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Delivery;

internal enum SettleOutcome
{
    Done,
    Stale,
}

internal readonly record struct QueueCounts(int Ready, int InFlight, int Retrying);

internal enum FailureCause
{
    Nack,
    Push,
    VisibilityTimeout,
}

/// <summary>What a failed attempt turns into once stored: a retry (at <see cref="NextAttemptAt"/>, or now when 0) or exhaustion.</summary>
internal readonly record struct FailureOutcome(int Attempts, string Error, long NextAttemptAt, bool Exhausted, ExhaustedAction Action);

/// <summary>A failure begun under a queue's lock, to be stored and then applied by <see cref="SubscriptionQueue.CompleteFailureAsync"/>.</summary>
internal readonly record struct PendingFailure(DeliveryEntry Entry, FailureCause Cause, FailureOutcome Outcome, long VisibleUntil);

/// <summary>
/// The live deliveries of one subscription (consumer group × topic): a FIFO of ready entries, the
/// entries in flight, and those waiting for a due time. Long-poll receivers and the push
/// dispatcher wait on a signal raised when an entry becomes ready, never by polling storage.
/// </summary>
internal sealed partial class SubscriptionQueue(Subscription subscription, DueScheduler scheduler, PayloadBudget budget, Func<IDeliveryRecorder> recorder)
{
    /// <summary>How soon a failure whose store write failed is tried again.</summary>
    private const long StoreRetryMs = 1000;

    private readonly Lock _gate = new();
    private readonly LinkedList<DeliveryEntry> _ready = new();
    private readonly Dictionary<Guid, DeliveryEntry> _live = [];
    private TaskCompletionSource? _readySignal;
    private int _inFlight;
    private int _waiting;
    private int _receivers;
    private bool _closed;
    private bool _wakeDeferred;

    // Set while the writer publishes one group commit's effects: waiters are woken once, at its end.
    [ThreadStatic] private static List<SubscriptionQueue>? t_deferredWakes;

    /// <summary>How many long polls (or push dispatchers) are waiting on this queue right now.</summary>
    public int WaitingReceivers => Volatile.Read(ref _receivers);

    public Subscription Subscription { get; set; } = subscription;

    /// <summary>How the push endpoint has answered lately (console only).</summary>
    public PushHealth PushHealth { get; } = new();
    public string Group => Subscription.Group;
    public string Topic => Subscription.Topic;

    /// <summary>
    /// Adds a delivery that is new, recovered after a restart, or redriven. One with an ordering key waits
    /// (blocked) behind the key's earlier deliveries; <paramref name="commitSeq"/> is its place among them.
    /// </summary>
    public DeliveryEntry? Add(Guid messageId, int attempts, long dueAt, MessagePayload? payload, long now, string? orderingKey = null, long commitSeq = 0)
    {
        var entry = new DeliveryEntry(messageId, this) { Attempts = attempts, Order = orderingKey is null ? null : new OrderSlot(orderingKey, commitSeq) };
        lock (_gate)
        {
            if (_closed || !_live.TryAdd(messageId, entry)) return null;
            if (payload is not null && budget.TryReserve(payload.ApproximateBytes)) entry.Payload = payload;
            if (orderingKey is not null && !EnterLaneLocked(entry, dueAt)) return entry;
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
        get { lock (_gate) return _ready.Count > 0 || _nudged; }
    }

    /// <summary>Completes when an entry may be ready, or after <paramref name="timeout"/>; false on timeout.</summary>
    public async Task<bool> WaitForReadyAsync(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        Task signal;
        lock (_gate)
        {
            if (_ready.Count > 0 || _closed || _nudged) return true;
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

    public SettleOutcome Ack(Guid messageId, ulong nonce, out int attempts) => Ack(messageId, nonce, out attempts, out _);

    /// <param name="order">The delivery's ordering key and place, for <see cref="Restore"/>.</param>
    public SettleOutcome Ack(Guid messageId, ulong nonce, out int attempts, out OrderSlot? order)
    {
        lock (_gate)
        {
            attempts = 0;
            order = null;
            if (!TryGetLeased(messageId, nonce, out var entry)) return SettleOutcome.Stale;
            attempts = entry.Attempts;
            order = entry.Order;
            Finish(entry);
            return SettleOutcome.Done;
        }
    }

    /// <summary>An ack whose store write failed: the delivery goes back to the group (behind its key's delivery in flight, if any).</summary>
    public void Restore(Guid messageId, int attempts, long now, OrderSlot? order = null) =>
        Add(messageId, attempts, now, null, now, order?.Key, order?.Seq ?? 0);

    /// <summary>
    /// Starts a nack: back to the group after <paramref name="retryAt"/> (0: the next backoff level) once
    /// <see cref="CompleteFailureAsync"/> has stored it. Until then the delivery stays in flight.
    /// </summary>
    public SettleOutcome BeginNack(Guid messageId, ulong nonce, long retryAt, TimeSpan backoff, long now, out PendingFailure pending)
    {
        lock (_gate)
        {
            pending = default;
            if (!TryGetLeased(messageId, nonce, out var entry)) return SettleOutcome.Stale;
            var due = retryAt > 0 ? retryAt : now + (long)backoff.TotalMilliseconds;
            pending = BeginFailureLocked(entry, FailureCause.Nack, "nacked by the consumer", due, now);
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

    /// <summary>A push attempt failed: stores the attempt (or the dead letter), then moves the delivery on.</summary>
    public Task<DeliveryState?> PushFailedAsync(DeliveryEntry entry, string error, TimeSpan backoff, long now)
    {
        PendingFailure pending;
        lock (_gate)
        {
            if (entry.Phase != EntryPhase.InFlight || entry.Settling) return Task.FromResult<DeliveryState?>(DeliveryState.Acked);
            pending = BeginFailureLocked(entry, FailureCause.Push, error, now + (long)backoff.TotalMilliseconds, now);
        }
        return CompleteFailureAsync(pending);
    }

    /// <summary>Called by the scheduler when a due time set for <paramref name="version"/> arrives.</summary>
    public void OnDue(DeliveryEntry entry, long version, long now, TimeSpan backoff)
    {
        PendingFailure? timedOut = null;
        lock (_gate)
        {
            if (entry.Version != version || _closed) return;
            if (entry.Phase == EntryPhase.Waiting)
            {
                _waiting--;
                MakeReady(entry);
            }
            else if (entry.Phase == EntryPhase.InFlight && !entry.Settling)
            {
                // Visibility ran out: visible again at once (the attempt already counted), once stored.
                timedOut = BeginFailureLocked(entry, FailureCause.VisibilityTimeout, "not acked before its visibility timeout", 0, now);
            }
        }
        // Nobody waits on it; CompleteFailureAsync never throws for this cause (a failed write is retried by the scheduler).
        if (timedOut is { } pending) _ = CompleteFailureAsync(pending);
    }

    /// <summary>The deliveries waiting for a retry backoff (not those waiting for a delay: they were never attempted).</summary>
    public List<Guid> RetryingIds()
    {
        lock (_gate)
        {
            var ids = new List<Guid>(Math.Min(_waiting, 4096));
            foreach (var entry in _live.Values)
            {
                // A blocked one may hold a stored retry time too (recovered behind its key's first delivery).
                if (entry.Attempts > 0 && (entry.Phase == EntryPhase.Waiting || (entry.Phase == EntryPhase.Blocked && entry.DueAt > 0))) ids.Add(entry.MessageId);
            }
            return ids;
        }
    }

    /// <summary>
    /// A stored retry-now (writer thread, after commit): a delivery waiting for its backoff is ready at once.
    /// One whose failure is still being stored becomes ready once it is (the store ordered the retry-now after it).
    /// </summary>
    public void BringForward(Guid messageId)
    {
        lock (_gate)
        {
            if (_closed || !_live.TryGetValue(messageId, out var entry)) return;
            if (entry.Phase == EntryPhase.Waiting)
            {
                _waiting--;
                entry.Version++;
                MakeReady(entry);
            }
            else if (entry.Phase == EntryPhase.InFlight && entry.Settling)
            {
                entry.RetryNowRequested = true;
            }
            else if (entry.Phase == EntryPhase.Blocked)
            {
                entry.DueAt = 0; // due at once when its key's turn comes
            }
        }
    }

    /// <summary>Ready counts the deliveries waiting for their ordering key's turn too: nothing but order holds them.</summary>
    public QueueCounts Counts()
    {
        lock (_gate) return new QueueCounts(_ready.Count + _blocked, _inFlight, _waiting);
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
            _lanes?.Clear();
            _inFlight = _waiting = _blocked = 0;
            _readySignal?.TrySetResult();
            return ids;
        }
    }

    /// <summary>
    /// Stores a failure begun under the lock, then applies it to memory: memory follows the store. When
    /// the write fails, memory stays as the store has it: a nack leaves the delivery in flight and
    /// throws; a failed push is not counted and is tried again after its backoff; a visibility timeout
    /// is tried again a second later.
    /// </summary>
    /// <returns>The state stored, or null when the delivery had left the queue meanwhile.</returns>
    public async Task<DeliveryState?> CompleteFailureAsync(PendingFailure pending)
    {
        var entry = pending.Entry;
        try
        {
            await recorder().RecordAsync(entry.MessageId, Group, pending.Outcome);
        }
        catch (Exception) when (pending.Cause != FailureCause.Nack)
        {
            lock (_gate) UndoFailureLocked(entry, pending);
            return null;
        }
        catch
        {
            lock (_gate) UndoFailureLocked(entry, pending);
            throw;
        }

        lock (_gate)
        {
            if (entry.Phase != EntryPhase.InFlight || !entry.Settling) return null; // closed meanwhile
            entry.Settling = false;
            _inFlight--;
            var outcome = pending.Outcome;
            if (outcome.Exhausted)
            {
                RemoveLocked(entry);
                return outcome.Action == ExhaustedAction.Discard ? DeliveryState.Discarded : DeliveryState.DeadLettered;
            }
            entry.Version++;
            var retryNow = entry.RetryNowRequested;
            entry.RetryNowRequested = false;
            if (outcome.NextAttemptAt > 0 && !retryNow)
            {
                Wait(entry, outcome.NextAttemptAt);
                return DeliveryState.Retrying;
            }
            MakeReady(entry);
            return DeliveryState.Pending;
        }
    }

    private PendingFailure BeginFailureLocked(DeliveryEntry entry, FailureCause cause, string error, long retryAt, long now)
    {
        // Settling makes the receipt handle stale and the version change makes the lease's timer stale,
        // so nothing else moves this delivery while its failure is being stored.
        entry.Settling = true;
        entry.Version++;
        var sub = Subscription;
        var exhausted = entry.Attempts >= sub.MaxAttempts;
        var outcome = exhausted
            ? new FailureOutcome(entry.Attempts, $"{error} (attempt {entry.Attempts} of {sub.MaxAttempts})", 0, true, sub.OnExhausted)
            : new FailureOutcome(entry.Attempts, error, retryAt > now ? retryAt : 0, false, sub.OnExhausted);
        return new PendingFailure(entry, cause, outcome, entry.DueAt);
    }

    private void UndoFailureLocked(DeliveryEntry entry, PendingFailure pending)
    {
        if (entry.Phase != EntryPhase.InFlight || !entry.Settling) return;
        entry.Settling = false;
        entry.RetryNowRequested = false;
        entry.Version++;
        var now = scheduler.Now;
        switch (pending.Cause)
        {
            case FailureCause.Nack:
                // Unchanged: still in flight under the same handle until its visibility runs out.
                entry.DueAt = pending.VisibleUntil;
                scheduler.Schedule(entry, entry.Version, pending.VisibleUntil);
                break;
            case FailureCause.VisibilityTimeout:
                entry.DueAt = now + StoreRetryMs;
                scheduler.Schedule(entry, entry.Version, entry.DueAt);
                break;
            default:
                // The attempt was never stored, so it does not count; the push is tried again later.
                _inFlight--;
                entry.Attempts--;
                Wait(entry, Math.Max(pending.Outcome.NextAttemptAt, now + StoreRetryMs));
                break;
        }
    }

    private bool TryGetLeased(Guid messageId, ulong nonce, out DeliveryEntry entry) =>
        _live.TryGetValue(messageId, out entry!) && entry.Phase == EntryPhase.InFlight && !entry.Settling && entry.Nonce == nonce;

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
        if (entry.OrderingKey is not null) LeaveLaneLocked(entry);
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
        if (_readySignal is null) return;
        if (t_deferredWakes is { } deferred)
        {
            if (!_wakeDeferred) deferred.Add(this);
            _wakeDeferred = true;
            return;
        }
        Wake();
    }

    private void Wake()
    {
        _wakeDeferred = false;
        if (_readySignal is { } signal)
        {
            _readySignal = null;
            signal.TrySetResult();
        }
    }

    /// <summary>
    /// Until disposed, entries made ready on this thread wake their waiters only at the end: a receive
    /// woken by a group commit then finds all of that commit's messages, not the first one alone, and
    /// needs no timed linger to collect the rest.
    /// </summary>
    public static DeferredWakes DeferWakes()
    {
        t_deferredWakes = t_spare ?? [];
        t_spare = null;
        return default;
    }

    internal readonly struct DeferredWakes : IDisposable
    {
        public void Dispose()
        {
            if (t_deferredWakes is not { } queues) return;
            t_deferredWakes = null;
            foreach (var queue in queues)
            {
                lock (queue._gate) queue.Wake();
            }
            queues.Clear();
            t_spare = queues;
        }
    }

    [ThreadStatic] private static List<SubscriptionQueue>? t_spare;
}
