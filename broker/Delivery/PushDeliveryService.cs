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
    IPushDeliveries deliveries,
    OutboundHttp http,
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
                // Paused while this loop waited for a slot: nothing more is handed out.
                var lease = queue.Subscription.Paused ? null : await TakeAsync(queue);
                if (lease is null)
                {
                    _slots.Release(owner, slotHost);
                    continue;
                }

                var task = PushOneAsync(queue, lease, cancellationToken);
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

    /// <summary>A store that cannot be read (the database is away) is a pause, not the end of the loop.</summary>
    private async Task<PushLease?> TakeAsync(SubscriptionQueue queue)
    {
        try
        {
            return await deliveries.TakeAsync(queue);
        }
        catch (StoreUnavailableException e)
        {
            logger.LogWarning("Push dispatch for {Group}/{Topic} could not take a delivery: {Error}", queue.Group, queue.Topic, e.Message);
            await Task.Delay(TimeSpan.FromSeconds(1), time);
            return null;
        }
    }

    private async Task PushOneAsync(SubscriptionQueue queue, PushLease lease, CancellationToken cancellationToken)
    {
        try
        {
            // One read, so the URL and the secrets that sign for it come from the same version of the subscription.
            var subscription = queue.Subscription;
            var push = subscription.Push;
            var payload = lease.Payload;
            if (push is null || payload is null)
            {
                // Gone (purged or deleted with its subscription): nothing left to deliver.
                await deliveries.GoneAsync(queue, lease);
                return;
            }

            var body = JsonSerializer.SerializeToUtf8Bytes(
                new PushBody(payload.Id.ToString(), payload.Topic, payload.Tag, payload.Keys, payload.Properties,
                    new RawJson(payload.Body), lease.Attempt, Times.ToUtc(payload.BornAt), queue.Group, lease.OrderingKey),
                BrokerJsonContext.Default.PushBody);
            var signing = CallSigning.For(_brokerSecrets, subscription.Signing, payload.Id, time.GetUtcNow().ToUnixTimeMilliseconds());
            using var activity = BrokerTracing.StartCall("push", payload.TraceParent, payload.Topic, payload.Id, queue.Group);
            var result = await http.PostJsonAsync(push.Url, body, push.TimeoutMs, Headers(payload, lease, queue.Group, activity is null), signing, 0, cancellationToken);
            BrokerTracing.Ended(activity, result.Status, result.IsSuccess ? null : result.Describe());
            metrics.Pushed(result.IsSuccess ? null : result.Describe());
            queue.PushHealth.Record(result.IsSuccess, result.IsSuccess ? null : result.Describe(), time.GetUtcNow().ToUnixTimeMilliseconds());

            if (result.IsSuccess)
            {
                await deliveries.AckAsync(queue, lease);
            }
            else
            {
                var now = time.GetUtcNow().ToUnixTimeMilliseconds();
                await deliveries.FailedAsync(queue, lease, result.Describe(), _options.BackoffFor(lease.Attempt), now);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            logger.LogError(e, "Push of message {MessageId} to {Group} failed unexpectedly", lease.MessageId, queue.Group);
            metrics.PushBrokerError();
            // The log has the exception; lastError is read by clients, so it gets a fixed word.
            try
            {
                await deliveries.FailedAsync(queue, lease, "broker error", _options.BackoffFor(lease.Attempt), time.GetUtcNow().ToUnixTimeMilliseconds());
            }
            catch (Exception failed)
            {
                // Not stored: the lease runs out and the delivery comes back.
                logger.LogError(failed, "Storing the failed push of message {MessageId} to {Group} failed", lease.MessageId, queue.Group);
            }
        }
    }

    /// <param name="forwardTrace">
    /// Without a span of the broker's own (tracing off), the producer's traceparent is passed on as it is;
    /// with one, the HTTP client sends the span's, which continues the same trace.
    /// </param>
    private static List<KeyValuePair<string, string>> Headers(MessagePayload payload, PushLease lease, string group, bool forwardTrace)
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
