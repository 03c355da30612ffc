using System.Threading.Channels;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Hosting;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Transactions;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Engine;

/// <summary>
/// The single writer: requests put commands on a channel; one dedicated thread drains up to
/// <c>MaxBatchSize</c> of them, runs them as one store batch (group commit: one journal append,
/// see <see cref="JournaledMessageStore"/>), and only then completes each. No lock is held around
/// request handling. When the store fsyncs (<see cref="IMessageLog.SyncsSeparately"/>), a second
/// thread, the completer, waits for the disk and then publishes each batch's effects and answers its
/// callers, in batch order, while the writer already builds and writes the next batch: one fsync
/// then covers every batch written while the previous one was syncing. With <c>VisibleBeforeFsync</c>
/// the writer publishes the effects itself, as soon as the batch is written, and the completer only answers.
/// </summary>
internal sealed class StoreWriter : IDisposable
{
    private readonly Channel<StoreCommand> _channel = Channel.CreateBounded<StoreCommand>(
        new BoundedChannelOptions(50_000) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

    private readonly IMessageLog _store;
    private readonly TimeProvider _time;
    private readonly ILogger<StoreWriter> _logger;
    private readonly BrokerMetrics _metrics;
    private readonly WriteContext _context;
    private readonly int _maxBatch;
    private readonly bool _manyWriters;
    private readonly int _fillTo;
    private readonly int _yields;
    private readonly bool _visibleBeforeFsync;
    private readonly Thread _thread;
    private readonly Thread? _completer;

    // Many active brokers: each batch reads (and locks) what its commands look up in one query, before they run.
    private readonly IBatchPrefetch? _prefetch;
    private readonly BatchLookups _lookups = new();

    // Batches handed to the completer and published by it; the writer waits for the two to meet before
    // and after a command that needs published state (NeedsPublishedState).
    private readonly object _publishedGate = new();
    private long _handedOver;
    private long _published;

    // Written batches waiting for the disk, oldest first (pipelined mode only).
    private readonly Channel<WrittenBatch> _written = Channel.CreateBounded<WrittenBatch>(
        new BoundedChannelOptions(64) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });

    public StoreWriter(IMessageLog store, DeliveryRegistry deliveries, ILiveDeliveries live, CheckSchedule checks, IOptions<BrokerOptions> options, TimeProvider time, ILogger<StoreWriter> logger, BrokerMetrics metrics)
    {
        _metrics = metrics;
        _store = store;
        _time = time;
        _logger = logger;
        _context = new WriteContext(store, options.Value, deliveries, live, checks);
        _manyWriters = options.Value.Storage.Provider == StorageProvider.PostgreSql && options.Value.Storage.PostgreSql.MultiActive;
        _maxBatch = Math.Max(1, options.Value.Storage.MaxBatchSize);
        _fillTo = options.Value.Storage.FillBatchTo;
        _yields = Math.Max(0, options.Value.Storage.FillYields);
        _prefetch = _manyWriters ? store as IBatchPrefetch : null;
        _thread = new Thread(Loop) { IsBackground = true, Name = "halfmsg-store-writer" };
        if (options.Value.Storage.VisibleBeforeFsync)
        {
            // An operator reading the log should know consumers may see what a power cut takes back, or that the setting does nothing.
            if (store.SyncsSeparately) logger.LogInformation("Broker:Storage:VisibleBeforeFsync is on: consumers see a change once it is written, before its fsync; every 2xx still waits for the fsync");
            else logger.LogWarning("Broker:Storage:VisibleBeforeFsync has no effect here: with Durability=Process or PostgreSQL a change is visible once stored, as the 2xx is");
        }
        if (store.SyncsSeparately)
        {
            _visibleBeforeFsync = options.Value.Storage.VisibleBeforeFsync;
            _completer = new Thread(CompleteLoop) { IsBackground = true, Name = "halfmsg-store-completer" };
            _completer.Start();
        }
        _thread.Start();
    }

    public long BatchesCommitted { get; private set; }
    public long CommandsCommitted { get; private set; }

    public bool IsRunning => _thread.IsAlive;

    /// <summary>Test seam: throwing from it fails that command's store write the way a refused write would.</summary>
    internal Action<StoreCommand>? CommandFault { get; set; }

    public async Task<TResult> Submit<TResult>(StoreCommand<TResult> command, CancellationToken cancellationToken = default)
    {
        await _channel.Writer.WriteAsync(command, cancellationToken);
        return await command.Task;
    }

    /// <summary>For changes nobody waits on (a failed delivery attempt); failures are logged.</summary>
    public void Post<TResult>(StoreCommand<TResult> command)
    {
        if (!_channel.Writer.TryWrite(command))
        {
            _ = SubmitAndLog(command);
        }
        else
        {
            command.Task.ContinueWith(
                t => _logger.LogError(t.Exception, "A background store change failed"),
                CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
    }

    private async Task SubmitAndLog<TResult>(StoreCommand<TResult> command)
    {
        try
        {
            await Submit(command);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _logger.LogError(e, "A background store change failed");
        }
    }

    private void Loop()
    {
        var reader = _channel.Reader;
        var wait = new ChannelWait<StoreCommand>(reader);
        var batch = new List<StoreCommand>(_maxBatch);
        while (true)
        {
            if (!reader.TryRead(out var first))
            {
                // Blocking is right here: this thread exists only to run the writer.
                if (!wait.WaitToRead()) break;
                continue;
            }

            batch.Add(first);
            while (batch.Count < _maxBatch && reader.TryRead(out var next)) batch.Add(next);
            // A fuller batch costs less per change (LiteDB's commit is mostly a fixed cost): if request threads
            // are waiting for a core, let them run and hand in their changes first. Idle, Yield returns at once.
            for (var y = 0; y < _yields && batch.Count < _fillTo; y++)
            {
                if (!Thread.Yield()) break;
                while (batch.Count < _maxBatch && reader.TryRead(out var next)) batch.Add(next);
            }
            // Published by the writer itself (VisibleBeforeFsync), every earlier batch's effects are in place already.
            var barrier = _completer is not null && !_visibleBeforeFsync && batch.Exists(c => c.NeedsPublishedState);
            if (barrier) WaitUntilPublished();
            try
            {
                CommitBatch(batch, careful: false);
            }
            catch (StoreOutcomeUnknownException e)
            {
                // The batch may be stored: running its commands again could store them twice. Their callers are told.
                _context.Messages.Clear();
                _logger.LogError(e, "Group commit of {Count} changes got no answer; its outcome is unknown", batch.Count);
                foreach (var command in batch) command.Fail(e);
            }
            catch (Exception e)
            {
                // The rolled-back batch may have left mutated messages in the cache.
                _context.Messages.Clear();
                // One bad command must not fail its neighbours: retry each on its own, carefully.
                // A duplicate transactionId or Idempotency-Key (a producer's retry) lands here by design.
                if (LiteDbMessageStore.IsDuplicateKey(e)) _logger.LogDebug("A replayed send rolled back its batch; retrying {Count} changes one by one", batch.Count);
                else if (e is StoreConflictException) _logger.LogDebug("A group commit collided with another broker's; retrying {Count} changes one by one", batch.Count);
                else _logger.LogWarning(e, "Group commit of {Count} changes failed; retrying them one by one", batch.Count);
                foreach (var command in batch) CommitAlone(command);
            }
            if (barrier) WaitUntilPublished();
            batch.Clear();
        }
        _written.Writer.TryComplete();
    }

    /// <summary>How often a command that collided with another broker's writes (<see cref="StoreConflictException"/>) is run again.</summary>
    internal const int ConflictRetries = 3;

    private void CommitAlone(StoreCommand command)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                CommitBatch([command], careful: true);
                return;
            }
            catch (Exception conflict) when (attempt <= ConflictRetries && (conflict is StoreConflictException || (_manyWriters && LiteDbMessageStore.IsDuplicateKey(conflict))))
            {
                // Rolled back whole: running it again is safe, and the other broker's transaction has ended by now. A duplicate
                // key alone, with other brokers writing, is one's insert committed after this command looked: now it is seen.
                _context.Messages.Clear();
                _logger.LogDebug(conflict, "A store change collided with another broker's (attempt {Attempt}); running it again", attempt);
            }
            catch (Exception single)
            {
                _context.Messages.Clear();
                _logger.LogError(single, "A store change failed");
                command.Fail(single);
                return;
            }
        }
    }

    private void CommitBatch(List<StoreCommand> batch, bool careful)
    {
        var started = _time.GetTimestamp();
        _context.Begin(_time.GetUtcNow().ToUnixTimeMilliseconds(), careful);
        _store.RunBatch(() =>
        {
            if (_prefetch is not null) Prefetch(batch);
            foreach (var command in batch)
            {
                CommandFault?.Invoke(command);
                command.Execute(_context);
            }
            _context.FlushCounts();
        });
        BatchesCommitted++;
        CommandsCommitted += batch.Count;
        _metrics.BatchCommitted(batch.Count, _time.GetElapsedTime(started), _context.Tally);

        if (_completer is null)
        {
            Publish(_context.Effects, batch);
            return;
        }
        Action[] effects = [];
        // Seen now, answered after the fsync: a consumer may see what a power cut takes back (see the option).
        if (_visibleBeforeFsync) Publish(_context.Effects, []);
        else effects = [.. _context.Effects];
        // Even a read-only batch waits its turn: it may have read a change that is not durable yet.
        var written = new WrittenBatch(_store.WrittenPosition, effects, [.. batch]);
        lock (_publishedGate) _handedOver++;
        // Blocking is right here too: a full pipeline means the disk is the bottleneck.
        if (!_written.Writer.TryWrite(written)) _written.Writer.WriteAsync(written).AsTask().GetAwaiter().GetResult();
    }

    private void Prefetch(List<StoreCommand> batch)
    {
        _lookups.Clear();
        foreach (var command in batch) command.NoteLookups(_lookups);
        if (!_lookups.IsEmpty) _prefetch!.Prefetch(_lookups);
    }

    private void Publish(IReadOnlyList<Action> effects, IReadOnlyList<StoreCommand> commands)
    {
        // Consumers woken by this batch are woken once it is all published, so one receive takes all of it.
        using (SubscriptionQueue.DeferWakes())
        {
            foreach (var effect in effects)
            {
                try
                {
                    effect();
                }
                catch (Exception e)
                {
                    _logger.LogError(e, "Publishing the effect of a stored change failed");
                }
            }
        }
        foreach (var command in commands) command.Complete();
    }

    private void CompleteLoop()
    {
        var reader = _written.Reader;
        var wait = new ChannelWait<WrittenBatch>(reader);
        while (wait.WaitToRead())
        {
            while (reader.TryRead(out var written))
            {
                try
                {
                    // One fsync covers every batch written so far: the ones queued behind this return at once.
                    _store.MakeDurable(written.Position);
                    Publish(written.Effects, written.Commands);
                }
                catch (Exception e)
                {
                    foreach (var command in written.Commands) command.Fail(e);
                }
                MarkPublished();
            }
        }
    }

    private void WaitUntilPublished()
    {
        lock (_publishedGate)
        {
            while (_published < _handedOver) Monitor.Wait(_publishedGate);
        }
    }

    private void MarkPublished()
    {
        lock (_publishedGate)
        {
            _published++;
            Monitor.PulseAll(_publishedGate);
        }
    }

    /// <summary>A batch in the journal, waiting for the fsync that makes it durable.</summary>
    private sealed record WrittenBatch(long Position, Action[] Effects, StoreCommand[] Commands);

    public void Dispose()
    {
        _channel.Writer.TryComplete();
        _thread.Join(TimeSpan.FromSeconds(10));
        _completer?.Join(TimeSpan.FromSeconds(10));
    }
}
