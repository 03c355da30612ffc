using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Hosting;
using HalfMsgBroker.Outbound;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Delivery;

/// <summary>
/// Owns push delivery: one dispatch loop per push subscription, woken the moment a delivery
/// becomes ready, with requests in flight capped per subscription, per host:port and overall, and
/// the overall slots shared fairly (<see cref="FairSlots"/>), so slow or dead endpoints cannot
/// starve the others. A 2xx acks; anything else is a failed attempt that the queue retries after
/// the backoff, or dead-letters/discards after maxAttempts.
/// </summary>
internal sealed class PushDeliveryService(
    DeliveryRegistry registry,
    StoreWriter writer,
    OutboundHttp http,
    IMessageLog store,
    IOptions<BrokerOptions> options,
    TimeProvider time,
    ILogger<PushDeliveryService> logger,
    BrokerMetrics metrics) : BackgroundService
{
    private static readonly TimeSpan RecheckEvery = TimeSpan.FromSeconds(2);

    private readonly DeliveryOptions _options = options.Value.Delivery;
    private readonly IReadOnlyList<string> _brokerSecrets = options.Value.Signing.Secrets;
    private readonly FairSlots _slots = new(
        options.Value.Delivery.MaxPushConcurrency,
        options.Value.Delivery.MaxPushConcurrencyPerSubscription,
        options.Value.Delivery.MaxPushConcurrencyPerHost,
        time);
    private readonly ConcurrentDictionary<SubscriptionQueue, Task> _loops = new();
    private CancellationToken _stopping;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        registry.QueueChanged += Start;
        foreach (var queue in registry.All) Start(queue);
        try
        {
            await Task.Delay(Timeout.Infinite, stoppingToken);
        }
        catch (OperationCanceledException)
        {
        }
        registry.QueueChanged -= Start;
        await Task.WhenAll(_loops.Values);
    }

    private void Start(SubscriptionQueue queue)
    {
        if (queue.Subscription.Push is null || queue.Subscription.Paused || _stopping.IsCancellationRequested) return;
        _loops.GetOrAdd(queue, q => Task.Run(() => DispatchAsync(q, _stopping)));
    }

    /// <summary>
    /// A paused subscription's loop ends (deliveries wait in the queue); resuming republishes the
    /// subscription, and <see cref="DeliveryRegistry.QueueChanged"/> starts a new loop at once.
    /// </summary>
    private bool IsStillPush(SubscriptionQueue queue) =>
        registry.Find(queue.Group, queue.Topic) == queue && queue.Subscription is { Push: not null, Paused: false };

    private async Task DispatchAsync(SubscriptionQueue queue, CancellationToken cancellationToken)
    {
        var owner = new SlotOwner();
        string? url = null, host = null;
        var inFlight = new ConcurrentDictionary<Task, byte>();
        var leases = new List<Lease>(1);
        try
        {
            while (!cancellationToken.IsCancellationRequested && IsStillPush(queue))
            {
                if (!queue.HasReady)
                {
                    await queue.WaitForReadyAsync(RecheckEvery, time, cancellationToken);
                    continue;
                }

                // The host is worked out again only when the subscription's URL changes.
                if (!ReferenceEquals(url, queue.Subscription.Push?.Url))
                {
                    url = queue.Subscription.Push?.Url;
                    host = FairSlots.HostOf(url);
                }
                var slotHost = host;
                await _slots.AcquireAsync(owner, slotHost, cancellationToken);
                leases.Clear();
                // Paused while this loop waited for a slot: nothing more is handed out.
                if (!queue.Subscription.Paused) queue.Take(1, null, leases);
                if (leases.Count == 0)
                {
                    _slots.Release(owner, slotHost);
                    continue;
                }

                var task = PushOneAsync(queue, leases[0], cancellationToken);
                inFlight.TryAdd(task, 0);
                _ = task.ContinueWith(t =>
                {
                    inFlight.TryRemove(t, out _);
                    _slots.Release(owner, slotHost);
                }, TaskScheduler.Default);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            logger.LogError(e, "Push dispatch for {Group}/{Topic} stopped", queue.Group, queue.Topic);
        }
        finally
        {
            await Task.WhenAll(inFlight.Keys);
            _loops.TryRemove(queue, out _);
            // The subscription may have turned push again while this loop was ending.
            if (!cancellationToken.IsCancellationRequested && IsStillPush(queue)) Start(queue);
        }
    }

    private async Task PushOneAsync(SubscriptionQueue queue, Lease lease, CancellationToken cancellationToken)
    {
        var entry = lease.Entry;
        try
        {
            // One read, so the URL and the secrets that sign for it come from the same version of the subscription.
            var subscription = queue.Subscription;
            var push = subscription.Push;
            var payload = entry.Payload ?? (store.Find(entry.MessageId) is { } stored ? MessagePayload.From(stored) : null);
            if (push is null || payload is null)
            {
                // Gone (purged or deleted with its subscription): nothing left to deliver.
                queue.PushSucceeded(entry);
                return;
            }

            var body = JsonSerializer.SerializeToUtf8Bytes(
                new PushBody(payload.Id.ToString(), payload.Topic, payload.Tag, payload.Keys, payload.Properties,
                    new RawJson(payload.Body), lease.Attempt, Times.ToUtc(payload.BornAt), queue.Group, entry.Order?.Key),
                BrokerJsonContext.Default.PushBody);
            var signing = CallSigning.For(_brokerSecrets, subscription.Signing, payload.Id, time.GetUtcNow().ToUnixTimeMilliseconds());
            using var activity = BrokerTracing.StartCall("push", payload.TraceParent, payload.Topic, payload.Id, queue.Group);
            var result = await http.PostJsonAsync(push.Url, body, push.TimeoutMs, Headers(payload, lease, queue.Group, activity is null), signing, 0, cancellationToken);
            BrokerTracing.Ended(activity, result.Status, result.IsSuccess ? null : result.Describe());
            metrics.Pushed(result.IsSuccess ? null : result.Describe());
            queue.PushHealth.Record(result.IsSuccess, result.IsSuccess ? null : result.Describe(), time.GetUtcNow().ToUnixTimeMilliseconds());

            if (result.IsSuccess)
            {
                queue.PushSucceeded(entry);
                try
                {
                    await writer.Submit(new AckDeliveries([new AckItem(entry.MessageId, queue.Group, lease.Attempt)]), CancellationToken.None);
                }
                catch
                {
                    // The store did not take the ack, so the delivery comes back (at least once), a second
                    // later rather than in a tight loop against a failing store.
                    var now = time.GetUtcNow().ToUnixTimeMilliseconds();
                    queue.Add(entry.MessageId, lease.Attempt, now + 1000, null, now, entry.OrderingKey, entry.CommitSeq);
                    throw;
                }
            }
            else
            {
                var now = time.GetUtcNow().ToUnixTimeMilliseconds();
                await queue.PushFailedAsync(entry, result.Describe(), _options.BackoffFor(lease.Attempt), now);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            logger.LogError(e, "Push of message {MessageId} to {Group} failed unexpectedly", entry.MessageId, queue.Group);
            metrics.PushBrokerError();
            // The log has the exception; lastError is read by clients, so it gets a fixed word.
            await queue.PushFailedAsync(entry, "broker error", _options.BackoffFor(lease.Attempt), time.GetUtcNow().ToUnixTimeMilliseconds());
        }
    }

    /// <param name="forwardTrace">
    /// Without a span of the broker's own (tracing off), the producer's traceparent is passed on as it is;
    /// with one, the HTTP client sends the span's, which continues the same trace.
    /// </param>
    private static List<KeyValuePair<string, string>> Headers(MessagePayload payload, Lease lease, string group, bool forwardTrace)
    {
        var headers = new List<KeyValuePair<string, string>>(4)
        {
            new("HalfMsg-Message-Id", payload.Id.ToString()),
            new("HalfMsg-Attempt", lease.Attempt.ToString(CultureInfo.InvariantCulture)),
            new("HalfMsg-Consumer-Group", group),
        };
        if (forwardTrace && payload.TraceParent is { } trace) headers.Add(new("traceparent", trace));
        return headers;
    }
}
