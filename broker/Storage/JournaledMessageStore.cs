using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Hosting;
using HalfMsgBroker.Lifecycle;
using LiteDB;
using Microsoft.Extensions.Logging.Abstractions;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The broker's store: LiteDB behind a journal. A group commit is durable once its frame is in the
/// <see cref="Journal"/>; an applier thread then hands LiteDB what accumulated, coalesced per
/// document, in one transaction every <c>Storage:ApplyDelay</c>. Under load most messages are
/// half-sent, committed and acked between two applies and reach LiteDB as a single insert instead of
/// three page-rewriting transactions. Reads see the unapplied changes first: lookups by id or unique
/// key consult them directly; index queries (due times, keys, dead letters, listings, counts) wait
/// until LiteDB holds everything journaled so far, then page inside LiteDB. After a crash, the frames LiteDB lacks are replayed on open.
/// </summary>
public sealed class JournaledMessageStore : IMessageStore
{
    private const int ReplayChunk = 10_000;
    private const int PoisonTries = 3;

    private readonly LiteDbMessageStore _db;
    private readonly Journal _journal;
    private readonly JournalQuarantine _quarantine;
    private readonly ILogger _logger;
    private readonly Action<Exception> _applyFailed;
    private readonly Action<Exception> _journalFailed;
    private readonly BrokerMetrics? _metrics;
    private JournalFailedException? _journalFailure;
    private readonly int _applyDelayMs;
    private readonly int _applyBatch;
    private readonly int _maxUnapplied;

    // Writer thread only: the batch in progress, its journal frame, and how many stored
    // messages hold each transactionId/Idempotency-Key hash (a hash missing there is a key never used).
    private readonly ChangeSet _staged = new();
    private readonly ArrayBufferWriter<byte> _frame = new(64 * 1024);
    private readonly StoredKeyHashes _keyHashes;
    private int _batchThread;
    private long _writtenSeq;

    // Held for a whole batch; Dispose takes it to wait out a batch in flight.
    private readonly object _writeLock = new();
    private bool _closing;

    // Shared with the applier and readers, under _gate.
    private readonly object _gate = new();
    private ChangeSet _pending = new();
    private ChangeSet? _applying;
    private long _pendingSince;
    private long _journaledSeq;
    private long _appliedSeq;
    private int _catchUps;
    private bool _stopping;
    private bool _drained; // stopping, and no batch can publish any more
    private bool _crashed;
    private long _failingSince; // Environment.TickCount64 of the first failure of the current apply, 0 while applies succeed

    private readonly Thread _applier;

    /// <param name="journalFailed">Called once, on the writer's or its completer's thread, when a journal write or fsync fails: the host stops the broker.</param>
    /// <param name="salvage">
    /// Replay every intact frame even past corruption, moving damaged segments to <c>journal/quarantine/</c>
    /// (the <c>journal salvage</c> command); otherwise corruption refuses the open with <see cref="JournalCorruptException"/>.
    /// </param>
    public JournaledMessageStore(
        LiteDbMessageStore db, string journalDirectory, StorageOptions options, Action<Exception> applyFailed,
        ILogger? logger = null, IJournalFiles? files = null, Action<Exception>? journalFailed = null, bool salvage = false,
        BrokerMetrics? metrics = null)
    {
        _db = db;
        _metrics = metrics;
        _applyFailed = applyFailed;
        _logger = logger ?? NullLogger.Instance;
        _journalFailed = journalFailed ?? (_ => { });
        _applyDelayMs = Math.Max(0, (int)options.ApplyDelay.TotalMilliseconds);
        _applyBatch = Math.Max(1, options.ApplyBatchSize);
        _maxUnapplied = Math.Max(_applyBatch, options.MaxUnappliedChanges);
        _quarantine = new JournalQuarantine(journalDirectory);

        try
        {
            var lastSeq = new JournalReplay(db, journalDirectory, _logger, ApplyIsolatingPoison).Run(salvage, _quarantine);
            _journal = Journal.Start(journalDirectory, options.Durability, options.JournalSegmentBytes, lastSeq + 1, files ?? JournalFiles.Real);
            _journaledSeq = _appliedSeq = lastSeq;
        }
        catch
        {
            _quarantine.Dispose();
            db.Dispose();
            throw;
        }

        _applier = new Thread(ApplyLoop) { IsBackground = true, Name = "halfmsg-store-applier" };
        _applier.Start();
        _keyHashes = new StoredKeyHashes(db.ProducerChosenKeys, _writeLock, _logger);
        _keyHashes.Start();
    }

    /// <summary>Files in <c>journal/quarantine/</c>: damaged segments and changes LiteDB refused, until an operator clears them.</summary>
    public int QuarantinedCount => _quarantine.Count;

    /// <summary>The journal write or fsync that failed (null while the journal works): the broker takes no more writes.</summary>
    public Exception? JournalFailure => Volatile.Read(ref _journalFailure);

    private bool InBatch => _batchThread == Environment.CurrentManagedThreadId;

    public void RunBatch(Action work)
    {
        // Uncontended (one writer); it only lets Dispose wait out a batch still in flight.
        lock (_writeLock)
        {
            // A journal failure stops the host, which closes the store: a batch retried meanwhile is refused
            // as unavailable (503, retry elsewhere or later), never as an unexpected error.
            if (JournalFailure is not null) throw JournalBroken();
            if (_closing) throw new StoreUnavailableException("The broker is stopping; nothing was stored. Retry once it is back.");
            RunBatchLocked(work);
        }
    }

    private void RunBatchLocked(Action work)
    {
        if (JournalFailure is not null) throw JournalBroken();
        _staged.Clear();
        _frame.ResetWrittenCount();
        _frame.Advance(Journal.HeaderBytes);
        _batchThread = Environment.CurrentManagedThreadId;
        try
        {
            work();
        }
        finally
        {
            _batchThread = 0;
        }
        if (_frame.WrittenCount == Journal.HeaderBytes) return; // read only

        long seq;
        try
        {
            seq = _journal.Append(MemoryMarshal.AsMemory(_frame.WrittenMemory).Span);
        }
        catch (JournalFailedException e)
        {
            throw Failed(e);
        }
        _staged.LastSeq = seq;
        _writtenSeq = seq;
        foreach (var change in _staged.Messages.Values)
        {
            if (change.UniqueKey is not { } key) continue;
            // InDb false: inserted by this batch (counted now) or inserted and deleted in it (never counted).
            if (change.Message is null)
            {
                if (change.InDb) _keyHashes.Removed(key);
            }
            else if (!change.InDb)
            {
                _keyHashes.Added(key);
            }
        }
        Publish(_staged);
    }

    public bool SyncsSeparately => _journal.SyncsSeparately;

    public long WrittenPosition => _writtenSeq;

    public void MakeDurable(long position)
    {
        if (_journal.SyncedSeq >= position) return;
        if (JournalFailure is not null) throw JournalBroken();
        try
        {
            _journal.Sync();
        }
        catch (JournalFailedException e)
        {
            throw Failed(e);
        }
    }

    private StoreUnavailableException Failed(JournalFailedException e)
    {
        if (Interlocked.CompareExchange(ref _journalFailure, e, null) is null)
        {
            _journalFailed(e);
            // Wakes index queries waiting for the applier (CatchUp), which now refuse at once.
            lock (_gate) Monitor.PulseAll(_gate);
        }
        return JournalBroken();
    }

    private static StoreUnavailableException JournalBroken() =>
        new("A journal write or fsync failed; the broker takes no more writes and is stopping so the journal is replayed at the next start.");

    private void Publish(ChangeSet batch)
    {
        lock (_gate)
        {
            // LiteDB falling behind must not grow memory without bound: the writer waits (its frame is already durable).
            while (_pending.Count >= _maxUnapplied && !_stopping && !_crashed) Monitor.Wait(_gate, 100);
            var wasEmpty = _pending.IsEmpty;
            _pending.MergeFrom(batch);
            _journaledSeq = batch.LastSeq;
            if (wasEmpty) _pendingSince = Environment.TickCount64;
            if (wasEmpty || _pending.Count >= _applyBatch) Monitor.PulseAll(_gate);
        }
    }

    // Snapshots are shared with the applier: callers get their own copy, which they may change.
    public StoredMessage? Find(Guid id) =>
        TryUnapplied(id, out var snapshot) ? snapshot?.Snapshot() : _db.Find(id);

    public StoredMessage? FindByTransactionId(string transactionId) => FindUnique(MessageCodec.TransactionKey(transactionId));

    public StoredMessage? FindByIdempotencyKey(string topic, string key) => FindUnique(MessageCodec.IdempotencyKey(topic, key));

    public void Insert(StoredMessage message)
    {
        var key = MessageCodec.ProducerChosenKeyOf(message);
        // LiteDB's unique index sees the insert only at the next apply, too late to refuse it: check here.
        if (key is not null && IsTaken(key)) throw new DuplicateKeyException(key);
        _staged.PutMessage(message.Snapshot(), inserted: true, key);
        JournalRecords.PutMessage(_frame, message);
    }

    public void Update(StoredMessage message)
    {
        _staged.PutMessage(message.Snapshot(), inserted: false, MessageCodec.ProducerChosenKeyOf(message));
        JournalRecords.PutMessage(_frame, message);
    }

    public void Delete(StoredMessage message)
    {
        var key = MessageCodec.ProducerChosenKeyOf(message);
        _staged.DeleteMessage(message.Id, key);
        JournalRecords.DeleteMessage(_frame, message.Id, key);
    }

    public void AddToTopicCounts(IReadOnlyDictionary<string, long> deltas)
    {
        var any = false;
        foreach (var (topic, delta) in deltas)
        {
            if (delta == 0) continue;
            _staged.AddTopicDelta(topic, delta);
            any = true;
        }
        if (any) JournalRecords.TopicDeltas(_frame, deltas);
    }

    public void SaveProducerGroup(ProducerGroup group) =>
        PutDocument(DocumentCollection.ProducerGroups, group.Name, LiteDbMessageStore.ToBson(group));

    public void SaveSubscription(Subscription subscription) => PutDocument(
        DocumentCollection.Subscriptions, LiteDbMessageStore.SubscriptionId(subscription.Group, subscription.Topic), LiteDbMessageStore.ToBson(subscription));

    public void DeleteSubscription(string group, string topic) =>
        DeleteDocument(DocumentCollection.Subscriptions, LiteDbMessageStore.SubscriptionId(group, topic));

    public void PutDeadLetter(DeadLetterRef deadLetter, long deadLetteredAt) =>
        PutDocument(DocumentCollection.DeadLetters, DeadLetterCodec.Id(deadLetter), DeadLetterCodec.ToBson(deadLetter, deadLetteredAt));

    public void DeleteDeadLetter(DeadLetterRef deadLetter) => DeleteDocument(DocumentCollection.DeadLetters, DeadLetterCodec.Id(deadLetter));

    public ProducerGroup? GetProducerGroup(string name) =>
        TryUnappliedDocument((DocumentCollection.ProducerGroups, name), out var doc)
            ? doc is null ? null : LiteDbMessageStore.ProducerGroupFrom(doc)
            : _db.GetProducerGroup(name);

    public int ProducerGroupCount()
    {
        CatchUp();
        return _db.ProducerGroupCount();
    }

    public IReadOnlyList<ProducerGroup> ProducerGroups()
    {
        CatchUp();
        return _db.ProducerGroups();
    }

    public IReadOnlyList<Subscription> Subscriptions()
    {
        CatchUp();
        return _db.Subscriptions();
    }

    public IReadOnlyList<StoredMessage> DueChecks(long now, int limit, bool latestFirst = false)
    {
        CatchUp();
        return _db.DueChecks(now, limit, latestFirst);
    }

    public long? EarliestCheckDue()
    {
        CatchUp();
        return _db.EarliestCheckDue();
    }

    public IReadOnlyList<Guid> DuePurges(long now, int limit)
    {
        CatchUp();
        return _db.DuePurges(now, limit);
    }

    public IEnumerable<OpenMessage> OpenMessages()
    {
        CatchUp();
        return _db.OpenMessages();
    }

    public IReadOnlyList<DeadLetterRef> ExpiredDeadLetters(long deadLetteredBefore, int limit)
    {
        CatchUp();
        return _db.ExpiredDeadLetters(deadLetteredBefore, limit);
    }

    public StorePage<StoredMessage> FindByKey(string key, string? topic, Guid? after, int limit)
    {
        CatchUp();
        return _db.FindByKey(key, topic, after, limit);
    }

    public StorePage<StoredMessage> DeadLetters(string group, string? topic, Guid? after, int limit)
    {
        CatchUp();
        return _db.DeadLetters(group, topic, after, limit);
    }

    public StorePage<Guid> DeadLetterIds(string group, string? topic, Guid? after, int limit)
    {
        CatchUp();
        return _db.DeadLetterIds(group, topic, after, limit);
    }

    public IReadOnlyList<CommittedRef> CommittedOn(string topic, long from, long to, CommittedRef? after, int limit)
    {
        CatchUp();
        return _db.CommittedOn(topic, from, to, after, limit);
    }

    public int CountDeadLetters(string group, string topic)
    {
        CatchUp();
        return _db.CountDeadLetters(group, topic);
    }

    public IReadOnlyList<StoredMessage> Transactions(
        MessageState? state, string? producerGroup, string? topic, Guid? after, int limit, Func<StoredMessage, bool> filter)
    {
        CatchUp();
        return _db.Transactions(state, producerGroup, topic, after, limit, filter);
    }

    public IReadOnlyList<TopicCount> TopicCounts()
    {
        CatchUp();
        return _db.TopicCounts();
    }

    public byte[] ReceiptKey() => _db.ReceiptKey();

    public void Dispose()
    {
        bool allApplied;
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        // No frame may be appended once the journal is judged fully applied (it is then deleted), and
        // the applier must outlive a batch still in flight so that one is applied too.
        lock (_writeLock) _closing = true;
        try
        {
            MakeDurable(_writtenSeq);
        }
        catch (StoreUnavailableException)
        {
            // The journal broke: the applier stops short and the journal is kept for the next start.
        }
        _keyHashes.Stop();
        lock (_gate)
        {
            _drained = true;
            Monitor.PulseAll(_gate);
        }
        _applier.Join(TimeSpan.FromSeconds(30));
        lock (_gate) allApplied = _appliedSeq == _journaledSeq && _applying is null;
        _journal.Close(allApplied);
        _quarantine.Dispose();
        _db.Dispose();
    }

    /// <summary>Closes the files the way a crash would leave them: journaled changes LiteDB does not hold yet stay unapplied.</summary>
    internal void DisposeAsIfCrashed()
    {
        lock (_gate)
        {
            _crashed = true;
            Monitor.PulseAll(_gate);
        }
        lock (_writeLock) _closing = true;
        _keyHashes.Stop();
        _applier.Join(TimeSpan.FromSeconds(30));
        _journal.Dispose();
        _quarantine.Dispose();
        _db.DisposeAsIfCrashed();
    }

    /// <summary>How long LiteDB has been refusing the journaled changes (zero while applies succeed).</summary>
    public TimeSpan ApplyFailingFor
    {
        get
        {
            var since = Volatile.Read(ref _failingSince);
            return since == 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Environment.TickCount64 - since);
        }
    }

    /// <summary>Tests: runs before (false) and after (true) each apply, so a test can make LiteDB fail on either side of its commit.</summary>
    internal Action<bool>? ApplyFault { get; set; }

    /// <summary>How long an index query waits for LiteDB to catch up before answering "unavailable".</summary>
    internal TimeSpan CatchUpTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Whether <see cref="Dispose"/> has begun (tests).</summary>
    internal bool Stopping
    {
        get
        {
            lock (_gate) return _stopping;
        }
    }

    /// <summary>How many journaled changes LiteDB does not hold yet (tests and diagnostics).</summary>
    internal int UnappliedCount
    {
        get
        {
            lock (_gate) return _pending.Count + (_applying?.Count ?? 0);
        }
    }

    /// <summary>Journal frames LiteDB does not hold yet: how far the apply lags behind the journal.</summary>
    internal long ApplyLagFrames
    {
        get
        {
            lock (_gate) return _journaledSeq - _appliedSeq;
        }
    }

    private void ApplyLoop()
    {
        if (!BackgroundPriority.LowerCurrentThread()) _logger.LogDebug("The applier thread keeps its CPU priority (lowering it was refused or is not supported here)");
        var spare = new ChangeSet();
        while (true)
        {
            ChangeSet batch;
            lock (_gate)
            {
                while (true)
                {
                    if (_crashed) return;
                    if (_pending.IsEmpty)
                    {
                        if (_drained) return;
                        Monitor.Wait(_gate);
                        continue;
                    }
                    var waited = Environment.TickCount64 - _pendingSince;
                    if (_stopping || _catchUps > 0 || _pending.Count >= _applyBatch || waited >= _applyDelayMs) break;
                    Monitor.Wait(_gate, (int)(_applyDelayMs - waited));
                }
                batch = _pending;
                _pending = spare;
                _applying = batch;
            }

            // With fsync pipelined the newest frames may not be on the disk yet; LiteDB must never hold a
            // change a power loss could take from the journal, so they are synced first (usually the
            // writer's completer has done it already and this returns at once).
            if (_journal.SyncedSeq < batch.LastSeq)
            {
                try
                {
                    MakeDurable(batch.LastSeq);
                }
                catch (StoreUnavailableException)
                {
                    return; // the journal broke: the next start replays it
                }
            }

            if (!ApplyUntilStored(batch)) return;
            lock (_gate)
            {
                _applying = null;
                _appliedSeq = batch.LastSeq;
                Monitor.PulseAll(_gate);
            }
            _journal.Release(batch.LastSeq);
            batch.Clear();
            spare = batch;
        }
    }

    /// <returns>False when the store closed first (the journal keeps the changes for the next start).</returns>
    private bool ApplyUntilStored(ChangeSet batch)
    {
        var retry = false;
        var refusals = 0;
        while (true)
        {
            try
            {
                // A failure after LiteDB's commit (its checkpoint, the fsync) leaves the changes stored:
                // applying them again would insert twice. Any retry checks, and then updates before inserting.
                if (!retry || _db.AppliedJournalSeq() < batch.LastSeq)
                {
                    var started = Stopwatch.GetTimestamp();
                    ApplyFault?.Invoke(false);
                    if (refusals >= PoisonTries) ApplyIsolatingPoison(batch);
                    else _db.Apply(batch, updateFirst: retry);
                    ApplyFault?.Invoke(true);
                    _metrics?.Applied(batch.Count, Stopwatch.GetElapsedTime(started));
                }
                Volatile.Write(ref _failingSince, 0);
                return true;
            }
            catch (Exception e)
            {
                // Nothing is lost while LiteDB refuses: the journal holds every change. LiteDB closes itself on
                // an I/O error, so retrying may not help; a restart replays the journal into a reopened file.
                // A refusal of the data itself (a unique index, a bad document) is retried a few times, then the
                // batch is applied change by change and the refused one quarantined.
                retry = true;
                refusals = IsRefusal(e) ? refusals + 1 : 0;
                if (Volatile.Read(ref _failingSince) == 0) Volatile.Write(ref _failingSince, Environment.TickCount64);
                _applyFailed(e);
                lock (_gate)
                {
                    if (_crashed || _stopping) return false;
                    // Only the step from retrying the batch to isolating its poison goes without a pause.
                    if (refusals != PoisonTries) Monitor.Wait(_gate, 1000);
                }
            }
        }
    }

    /// <summary>LiteDB refused the data, as opposed to failing to reach its file (which no document can be blamed for).</summary>
    internal static bool IsRefusal(Exception e) =>
        e is not (IOException or UnauthorizedAccessException or ObjectDisposedException or OutOfMemoryException)
        && e.InnerException is not IOException;

    /// <summary>
    /// Applies <paramref name="batch"/> one change at a time, each tried <see cref="PoisonTries"/> times; a change
    /// LiteDB keeps refusing goes to the quarantine and the rest are stored. Pieces are applied as a replay
    /// would (update first), recording the old sequence, so a crash in between replays them harmlessly;
    /// the topic counts and the batch's sequence go last, once.
    /// </summary>
    private void ApplyIsolatingPoison(ChangeSet batch)
    {
        var before = _db.AppliedJournalSeq();
        var one = new ChangeSet();
        foreach (var deletes in new[] { true, false })
        {
            foreach (var (id, change) in batch.Messages)
            {
                if ((change.Message is null) != deletes) continue;
                one.Clear();
                one.Messages[id] = change;
                ApplyOrQuarantine(one, before, batch.LastSeq, "messages", id.ToString(), change.Message is { } m ? MessageCodec.ToBson(m) : null);
            }
        }
        foreach (var ((collection, id), doc) in batch.Documents)
        {
            one.Clear();
            one.Documents[(collection, id)] = doc;
            ApplyOrQuarantine(one, before, batch.LastSeq, collection.ToString(), id, doc);
        }
        one.Clear();
        foreach (var (topic, delta) in batch.TopicDeltas) one.AddTopicDelta(topic, delta);
        one.LastSeq = batch.LastSeq;
        _db.Apply(one, updateFirst: true);
    }

    private void ApplyOrQuarantine(ChangeSet one, long before, long lastSeq, string collection, string id, BsonDocument? document)
    {
        one.LastSeq = before;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                _db.Apply(one, updateFirst: true);
                return;
            }
            catch (Exception e) when (IsRefusal(e))
            {
                if (attempt < PoisonTries) continue;
                // A LiteDB that closed itself refuses everything: a read that fails too means no document is to blame.
                _db.AppliedJournalSeq();
                var file = _quarantine.SavePoison(lastSeq, collection, id, document, e);
                _logger.LogError(e,
                    "LiteDB refused a journaled change {PoisonTries} times: {Collection} id {Id} (journal frames up to {Seq}); it is quarantined in {File} and skipped, everything else is stored. Inspect the file, then delete it and restart the broker.",
                    PoisonTries, collection, id, lastSeq, file);
                return;
            }
        }
    }

    /// <summary>Waits until LiteDB holds everything journaled so far, so an index query sees it.</summary>
    private void CatchUp()
    {
        if (Thread.CurrentThread == _applier) return;
        // LiteDB cannot hold the batch's own changes yet, and the writer would stall behind the applier.
        if (InBatch) throw new InvalidOperationException("Index queries run outside a batch: inside one they would miss its own changes.");
        lock (_gate)
        {
            var target = _journaledSeq;
            if (_appliedSeq >= target) return;
            _catchUps++;
            Monitor.PulseAll(_gate);
            try
            {
                var deadline = Environment.TickCount64 + (long)CatchUpTimeout.TotalMilliseconds;
                while (_appliedSeq < target)
                {
                    // The applier stops at the first frame the broken journal cannot make durable: it will not catch up.
                    if (JournalFailure is not null) throw JournalBroken();
                    var left = deadline - Environment.TickCount64;
                    if (left <= 0 || _crashed || _stopping)
                    {
                        throw new StoreUnavailableException($"LiteDB has not taken the journaled changes within {CatchUpTimeout.TotalSeconds:F0} s; the broker log says why.");
                    }
                    Monitor.Wait(_gate, (int)left);
                }
            }
            finally
            {
                _catchUps--;
            }
        }
    }

    private bool TryUnapplied(Guid id, out StoredMessage? snapshot)
    {
        if (InBatch && _staged.TryFind(id, out snapshot)) return true;
        lock (_gate)
        {
            if (_pending.TryFind(id, out snapshot)) return true;
            if (_applying is { } applying && applying.TryFind(id, out snapshot)) return true;
        }
        snapshot = null;
        return false;
    }

    private StoredMessage? FindUnique(string key)
    {
        if (InBatch && _staged.TryFindUnique(key, out var staged)) return staged?.Snapshot();
        return TryUnappliedUnique(key, out var snapshot) ? snapshot?.Snapshot() : _db.FindByUniqueKey(key);
    }

    private bool TryUnappliedUnique(string key, out StoredMessage? snapshot)
    {
        lock (_gate)
        {
            if (_pending.TryFindUnique(key, out snapshot)) return true;
            if (_applying is { } applying && applying.TryFindUnique(key, out snapshot)) return true;
        }
        snapshot = null;
        return false;
    }

    /// <summary>Writer thread: whether a stored (or staged) message already holds the key.</summary>
    private bool IsTaken(string key)
    {
        if (_staged.TryFindUnique(key, out var staged)) return staged is not null;
        // Nearly every key is new, and its hash is not counted: no lookup at all.
        if (!_keyHashes.MayHold(key)) return false;
        return TryUnappliedUnique(key, out var holder) ? holder is not null : _db.FindByUniqueKey(key) is not null;
    }

    /// <summary>Whether the stored unique keys are counted in yet (tests).</summary>
    internal bool KeysCounted
    {
        get
        {
            lock (_writeLock) return _keyHashes.Counted;
        }
    }

    private void PutDocument(DocumentCollection collection, string id, BsonDocument doc)
    {
        _staged.Documents[(collection, id)] = doc;
        JournalRecords.PutDocument(_frame, collection, doc);
    }

    private void DeleteDocument(DocumentCollection collection, string id)
    {
        _staged.Documents[(collection, id)] = null;
        JournalRecords.DeleteDocument(_frame, collection, id);
    }

    private bool TryUnappliedDocument((DocumentCollection, string) key, out BsonDocument? doc)
    {
        if (InBatch && _staged.Documents.TryGetValue(key, out doc)) return true;
        lock (_gate)
        {
            if (_pending.Documents.TryGetValue(key, out doc)) return true;
            if (_applying is { } applying && applying.Documents.TryGetValue(key, out doc)) return true;
        }
        doc = null;
        return false;
    }
}

/// <summary>Storage cannot answer now (LiteDB is not taking the journaled changes); nothing was changed, retry later.</summary>
public sealed class StoreUnavailableException(string message) : Exception(message);

/// <summary>A transactionId or Idempotency-Key that a stored message already holds.</summary>
public sealed class DuplicateKeyException(string key) : Exception($"A stored message already holds the unique key '{key}'.");
