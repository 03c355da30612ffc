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
/// request handling.
/// </summary>
internal sealed class StoreWriter : IDisposable
{
    private readonly Channel<StoreCommand> _channel = Channel.CreateBounded<StoreCommand>(
        new BoundedChannelOptions(50_000) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

    private readonly IMessageStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger<StoreWriter> _logger;
    private readonly BrokerMetrics _metrics;
    private readonly WriteContext _context;
    private readonly int _maxBatch;
    private readonly int _fillTo;
    private readonly int _yields;
    private readonly Thread _thread;

    public StoreWriter(IMessageStore store, DeliveryRegistry deliveries, CheckSchedule checks, IOptions<BrokerOptions> options, TimeProvider time, ILogger<StoreWriter> logger, BrokerMetrics metrics)
    {
        _metrics = metrics;
        _store = store;
        _time = time;
        _logger = logger;
        _context = new WriteContext(store, options.Value, deliveries, checks);
        _maxBatch = Math.Max(1, options.Value.Storage.MaxBatchSize);
        _fillTo = options.Value.Storage.FillBatchTo;
        _yields = Math.Max(0, options.Value.Storage.FillYields);
        _thread = new Thread(Loop) { IsBackground = true, Name = "halfmsg-store-writer" };
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
        var batch = new List<StoreCommand>(_maxBatch);
        while (true)
        {
            if (!reader.TryRead(out var first))
            {
                // Blocking is right here: this thread exists only to run the writer.
                if (!reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult()) return;
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
            try
            {
                CommitBatch(batch, careful: false);
            }
            catch (Exception e)
            {
                // The rolled-back batch may have left mutated messages in the cache.
                _context.Messages.Clear();
                // One bad command must not fail its neighbours: retry each on its own, carefully.
                // A duplicate transactionId or Idempotency-Key (a producer's retry) lands here by design.
                if (LiteDbMessageStore.IsDuplicateKey(e)) _logger.LogDebug("A replayed send rolled back its batch; retrying {Count} changes one by one", batch.Count);
                else _logger.LogWarning(e, "Group commit of {Count} changes failed; retrying them one by one", batch.Count);
                foreach (var command in batch)
                {
                    try
                    {
                        CommitBatch([command], careful: true);
                    }
                    catch (Exception single)
                    {
                        _context.Messages.Clear();
                        _logger.LogError(single, "A store change failed");
                        command.Fail(single);
                    }
                }
            }
            batch.Clear();
        }
    }

    private void CommitBatch(List<StoreCommand> batch, bool careful)
    {
        var started = _time.GetTimestamp();
        _context.Begin(_time.GetUtcNow().ToUnixTimeMilliseconds(), careful);
        _store.RunBatch(() =>
        {
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

        foreach (var effect in _context.Effects)
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
        foreach (var command in batch) command.Complete();
    }

    public void Dispose()
    {
        _channel.Writer.TryComplete();
        _thread.Join(TimeSpan.FromSeconds(10));
    }
}
