using HalfMsgBroker.Configuration;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Delivery;

/// <summary>
/// One timer for every delivery due time (delays, retry backoffs, visibility timeouts): a heap
/// ordered by due time, slept on until its head is due. Entries that changed since they were
/// scheduled are skipped by version, so nothing needs to be removed from the heap.
/// </summary>
internal sealed class DueScheduler(TimeProvider time, IOptions<BrokerOptions> options, ILogger<DueScheduler> logger) : BackgroundService
{
    private readonly Lock _gate = new();
    private readonly PriorityQueue<(DeliveryEntry Entry, long Version), long> _heap = new();
    private readonly WakeSignal _wake = new();

    /// <summary>The current time in Unix milliseconds, from the clock the scheduler runs on.</summary>
    public long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    public int Scheduled
    {
        get { lock (_gate) return _heap.Count; }
    }

    public void Schedule(DeliveryEntry entry, long version, long dueAt)
    {
        bool earliest;
        lock (_gate)
        {
            earliest = _heap.Count == 0 || (_heap.TryPeek(out _, out var head) && dueAt < head);
            _heap.Enqueue((entry, version), dueAt);
        }
        if (earliest) _wake.Set();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var due = new List<(DeliveryEntry Entry, long Version)>();
        while (!stoppingToken.IsCancellationRequested)
        {
            var now = time.GetUtcNow().ToUnixTimeMilliseconds();
            long? next = null;
            lock (_gate)
            {
                while (_heap.TryPeek(out var item, out var at))
                {
                    if (at > now)
                    {
                        next = at;
                        break;
                    }
                    _heap.Dequeue();
                    due.Add(item);
                }
            }

            foreach (var (entry, version) in due)
            {
                try
                {
                    var backoff = options.Value.Delivery.BackoffFor(entry.Attempts);
                    entry.Queue.OnDue(entry, version, now, backoff);
                }
                catch (Exception e)
                {
                    logger.LogError(e, "Handling a due delivery of message {MessageId} failed", entry.MessageId);
                }
            }
            due.Clear();

            var delay = next is { } n ? TimeSpan.FromMilliseconds(n - now) : Timeout.InfiniteTimeSpan;
            await _wake.WaitAsync(delay, time, stoppingToken);
        }
    }
}

/// <summary>An auto-resetting wake-up for a loop that otherwise sleeps until a due time.</summary>
internal sealed class WakeSignal
{
    private TaskCompletionSource _signal = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Set() => Volatile.Read(ref _signal).TrySetResult();

    /// <summary>Waits for <see cref="Set"/> or the delay; never throws on timeout or cancellation.</summary>
    public async Task WaitAsync(TimeSpan delay, TimeProvider time, CancellationToken cancellationToken)
    {
        var signal = Volatile.Read(ref _signal);
        if (!signal.Task.IsCompleted && delay != TimeSpan.Zero)
        {
            // A timer that cancels a delay, not a TimeoutException: an idle loop wakes every second.
            using var timer = delay == Timeout.InfiniteTimeSpan ? new CancellationTokenSource() : new CancellationTokenSource(delay, time);
            using var wake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
            await Task.WhenAny(signal.Task, Task.Delay(Timeout.InfiniteTimeSpan, wake.Token));
        }
        if (signal.Task.IsCompleted)
        {
            Interlocked.CompareExchange(ref _signal, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), signal);
        }
    }
}
