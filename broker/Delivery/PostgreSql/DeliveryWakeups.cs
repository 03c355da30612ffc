using System.Globalization;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Delivery.PostgreSql;

/// <summary>
/// Wakes this broker's long polls and push loops when rows may have become ready (<c>MultiActive</c>), never by
/// polling on their behalf:
/// <list type="bullet">
/// <item>a batch of any broker that inserts or resets rows notifies <c>halfmsg_ready</c> per subscription
/// (<see cref="DeliveryRowWrites"/>): rows due now nudge that subscription's queue; a due time later than now moves the timer;</item>
/// <item>one timer per broker at the earliest future <c>visible_at</c> (an index walk, <see cref="DeliveryRows.EarliestAfter"/>),
/// moved forward by notifications and by this broker's own leases; when it fires the leases that ran out are stored as
/// time-outs (<see cref="LeaseExpiry"/>) and every queue is nudged;</item>
/// <item>a slow safety poll (<see cref="PostgreSqlOptions.DeliverySafetyPoll"/>) nudges every queue, the backstop for a lost
/// notification or another broker's lease that ran out; after the LISTEN connection comes back every queue is nudged at once.</item>
/// </list>
/// </summary>
internal sealed class DeliveryWakeups : BackgroundService
{
    private readonly PostgreSqlNotifications _notifications;
    private readonly DeliveryRegistry _registry;
    private readonly SubscriptionLookup _subscriptions;
    private readonly DeliveryRows _rows;
    private readonly LeaseExpiry _expiry;
    private readonly TimeProvider _time;
    private readonly TimeSpan _safetyPoll;
    private readonly ILogger<DeliveryWakeups> _logger;
    private readonly Lock _gate = new();
    private long _timerAt = long.MaxValue;
    private long _turns;
    private TaskCompletionSource _moved = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <param name="store">Resolved first: opening the store migrates the schema this service reads.</param>
    public DeliveryWakeups(
        PostgreSqlNotifications notifications, DeliveryRegistry registry, SubscriptionLookup subscriptions, DeliveryRows rows, LeaseExpiry expiry,
        IMessageStore store, TimeProvider time, IOptions<BrokerOptions> options, ILogger<DeliveryWakeups> logger)
    {
        _ = store;
        _notifications = notifications;
        _registry = registry;
        _subscriptions = subscriptions;
        _rows = rows;
        _expiry = expiry;
        _time = time;
        _safetyPoll = options.Value.Storage.PostgreSql.DeliverySafetyPoll;
        _logger = logger;
    }

    /// <summary>A row of this broker's (a lease, a changed visibility) is due at <paramref name="at"/>: the timer fires no later.</summary>
    public void DueAt(long at)
    {
        lock (_gate)
        {
            if (at >= _timerAt) return;
            _timerAt = at;
            _moved.TrySetResult();
        }
    }

    /// <summary>How many times the loop went round: a wait that returns at once (a spin) shows here, not in wall-clock time.</summary>
    internal long Turns => Interlocked.Read(ref _turns);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _notifications.Reconnected += NudgeAll;
        await _notifications.ListenAsync(DeliveryRowWrites.ReadyChannel, OnReady).WaitAsync(stoppingToken);
        var lastPoll = _time.GetTimestamp();
        while (!stoppingToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref _turns);
            Task moved;
            long at;
            lock (_gate)
            {
                // A move already seen is spent: waiting on it again would return at once, and the loop would spin
                // until the timer is due. Read under the same lock, so a move after this completes the new one.
                if (_moved.Task.IsCompleted) _moved = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                moved = _moved.Task;
                at = _timerAt;
            }
            var now = Now;
            var untilPoll = _safetyPoll - _time.GetElapsedTime(lastPoll);
            if (at <= now || untilPoll <= TimeSpan.Zero)
            {
                if (untilPoll <= TimeSpan.Zero) lastPoll = _time.GetTimestamp();
                await ExpireLeasesAsync();
                NudgeAll();
                SetTimer(now);
                continue;
            }
            var wait = TimeSpan.FromMilliseconds(Math.Min(at - now, untilPoll.TotalMilliseconds));
            // The delay is cancelled when the timer moves, so moves do not leave timers behind.
            using var delay = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            await Task.WhenAny(moved, Task.Delay(wait, _time, delay.Token));
            await delay.CancelAsync();
            if (stoppingToken.IsCancellationRequested) break;
        }
        _notifications.Reconnected -= NudgeAll;
    }

    private async Task ExpireLeasesAsync()
    {
        try
        {
            await _expiry.RunAsync();
        }
        catch (Exception e) when (e is StoreUnavailableException or StoreOutcomeUnknownException)
        {
            _logger.LogWarning("Storing the visibility time-outs failed ({Error}); the next due time or safety poll tries again", e.Message);
        }
    }

    /// <summary>The timer goes to the earliest row due after now (or nowhere: the safety poll still runs).</summary>
    private void SetTimer(long now)
    {
        lock (_gate)
        {
            _timerAt = long.MaxValue;
            _moved = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        long? next;
        try
        {
            next = _rows.EarliestAfter(now);
        }
        catch (StoreUnavailableException e)
        {
            _logger.LogWarning("Reading the next due delivery failed ({Error}); the safety poll looks again", e.Message);
            next = null;
        }
        // A notification or a lease may have moved the timer meanwhile, to something earlier still.
        if (next is { } at) DueAt(at);
    }

    /// <summary><c>group \n topic \n earliest due \n earliest due after the writer's now (0: none)</c>.</summary>
    private void OnReady(string payload)
    {
        var parts = payload.Split('\n');
        if (parts.Length != 4
            || !long.TryParse(parts[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out var earliest)
            || !long.TryParse(parts[3], NumberStyles.Integer, CultureInfo.InvariantCulture, out var later))
        {
            return;
        }
        if (earliest <= Now)
        {
            if (_registry.Find(parts[0], parts[1]) is { } queue) queue.Nudge();
            else _ = AdoptAsync(parts[0], parts[1]);
        }
        else DueAt(earliest);
        if (later > 0) DueAt(later);
    }

    /// <summary>
    /// Rows of a subscription this broker has not heard of (created through another broker a moment ago): adopted from the
    /// store, off the listening thread, so its push loop starts here too (an adopted queue starts nudged).
    /// </summary>
    private async Task AdoptAsync(string group, string topic)
    {
        try
        {
            await Task.Run(() => _subscriptions.Find(group, topic));
        }
        catch (StoreUnavailableException e)
        {
            _logger.LogWarning("Reading subscription {Group}/{Topic} failed ({Error}); it is served once this broker hears of it", group, topic, e.Message);
        }
    }

    private void NudgeAll()
    {
        foreach (var queue in _registry.All) queue.Nudge();
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();
}
