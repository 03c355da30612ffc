using HalfMsgBroker.Access;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Api;

/// <summary>Pull consumption: long-poll receive, ack, nack and change-invisibility by receipt handle.</summary>
internal static class PullApi
{
    private const int MaxHandlesPerAck = 1000;

    public static void MapPullApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/consumer-groups/{group}").WithTags("Pull").RequireAuthorization(Policies.ConsumerGroup);
        group.MapPost("/topics/{topic}/receive", ReceiveAsync).RequireRateLimiting(AccessHosting.LongPollPolicy)
            .Accepts<ReceiveRequest>(isOptional: true, "application/json").WithBrokerSpan("receive")
            .Produces<ReceiveResponse>().ProducesProblem(400).ProducesProblem(404).ProducesProblem(409).ProducesProblem(429);
        group.MapPost("/ack", AckAsync).Accepts<AckRequest>("application/json").WithBrokerSpan("ack").Produces<AckResponse>().ProducesProblem(400);
        group.MapPost("/nack", NackAsync).Accepts<NackRequest>("application/json").Produces<NackResponse>().ProducesProblem(400).ProducesProblem(409).ProducesProblem(503);
        group.MapPost("/change-invisibility", ChangeInvisibilityAsync).Accepts<ChangeInvisibilityRequest>("application/json").Produces<ChangeInvisibilityResponse>().ProducesProblem(400).ProducesProblem(409);
    }

    private static async Task<IResult> ReceiveAsync(
        string group, string topic, HttpRequest request, DeliveryRegistry registry, IMessageLog store, ReceiptHandles handles,
        IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        if (!Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        var read = await RequestBody.ReadAsync(request, BrokerJsonContext.Default.ReceiveRequest, options.Value.MaxMessageBytes, true, ct);
        if (read.Problem is not null) return read.Problem;
        var dto = read.Value ?? new ReceiveRequest();

        var errors = new FieldErrors();
        var max = errors.Range("maxMessages", dto.MaxMessages, 1, 100, 16)!.Value;
        var wait = errors.Range("waitSeconds", dto.WaitSeconds, 0, 30, 20)!.Value;
        var invisible = errors.Range("invisibleSeconds", dto.InvisibleSeconds, 1, 43_200, 30)!.Value;
        if (errors.Any) return errors.ToProblem();

        var queue = registry.Find(group, topic);
        if (queue is null) return Problems.NotFound("subscription-not-found", $"Consumer group '{group}' has no subscription to topic '{topic}'; PUT one first.");
        if (queue.Subscription.Push is not null)
        {
            return Problems.Conflict("subscription-is-push", $"Consumer group '{group}' receives topic '{topic}' by push; remove push from the subscription to pull.");
        }

        var leases = await TakeAsync(queue, max, wait, invisible, options.Value.Delivery.ReceiveLinger, time, ct);

        var messages = new List<ReceivedMessage>(leases.Count);
        foreach (var lease in leases)
        {
            var payload = lease.Entry.Payload ?? (store.Find(lease.Entry.MessageId) is { } m ? MessagePayload.From(m) : null);
            if (payload is null)
            {
                queue.Ack(lease.Entry.MessageId, lease.Nonce, out _); // purged meanwhile: nothing to hand out
                continue;
            }
            messages.Add(new ReceivedMessage(
                payload.Id.ToString(), handles.Issue(payload.Id, lease.Nonce, group), payload.Topic, payload.Tag, payload.Keys,
                payload.Properties, new RawJson(payload.Body), lease.Attempt, Times.ToUtc(payload.BornAt), payload.TraceParent,
                lease.Entry.Order?.Key));
        }
        return TypedResults.Json(new ReceiveResponse(messages), BrokerJsonContext.Default.ReceiveResponse);
    }

    /// <summary>
    /// Takes what is ready, or waits up to <paramref name="wait"/> seconds for the first message. When it
    /// had to wait, it lingers a moment for more, so a consumer woken by one commit goes home with a
    /// batch rather than one message per request.
    /// </summary>
    private static async Task<List<Lease>> TakeAsync(
        SubscriptionQueue queue, int max, int wait, int invisible, TimeSpan linger, TimeProvider time, CancellationToken ct)
    {
        var leases = new List<Lease>(max);
        var deadline = time.GetTimestamp() + (long)(wait * (double)time.TimestampFrequency);
        var waited = false;
        try
        {
            while (true)
            {
                queue.Take(max, time.GetUtcNow().ToUnixTimeMilliseconds() + invisible * 1000L, leases);
                var remaining = time.GetElapsedTime(time.GetTimestamp(), deadline);
                if (leases.Count > 0 || remaining <= TimeSpan.Zero || ct.IsCancellationRequested || queue.IsClosed) break;
                await queue.WaitForReadyAsync(remaining, time, ct);
                waited = true;
            }
            if (waited && leases.Count > 0 && leases.Count < max && linger > TimeSpan.Zero)
            {
                await Task.Delay(linger, time, ct);
                queue.Take(max, time.GetUtcNow().ToUnixTimeMilliseconds() + invisible * 1000L, leases);
            }
        }
        catch (OperationCanceledException)
        {
            // The consumer went away; whatever it was handed becomes visible again after invisibleSeconds.
        }
        return leases;
    }

    private static async Task<IResult> AckAsync(
        string group, HttpRequest request, DeliveryRegistry registry, ReceiptHandles handles, StoreWriter writer,
        IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        var read = await RequestBody.ReadAsync(request, BrokerJsonContext.Default.AckRequest, options.Value.MaxMessageBytes, false, ct);
        if (read.Problem is not null) return read.Problem;
        var given = read.Value!.ReceiptHandles;
        if (given is null || given.Length == 0) return Problems.InvalidField("receiptHandles", "must list at least one receipt handle");
        if (given.Length > MaxHandlesPerAck) return Problems.InvalidField("receiptHandles", $"at most {MaxHandlesPerAck} per request (got {given.Length})");

        // Validate every handle before settling any, so a bad request changes nothing.
        var parsed = new (Guid Id, ulong Nonce)[given.Length];
        for (var i = 0; i < given.Length; i++)
        {
            if (given[i] is not { } h || !handles.TryRead(h, group, out parsed[i].Id, out parsed[i].Nonce)) return InvalidHandle(group, i);
        }

        var queues = registry.QueuesOf(group).ToList();
        var acks = new List<AckItem>(given.Length);
        var settled = new List<(SubscriptionQueue Queue, OrderSlot? Order)>(given.Length);
        var stale = new List<string>();
        for (var i = 0; i < given.Length; i++)
        {
            var (messageId, nonce) = parsed[i];
            var attempts = 0;
            OrderSlot? order = null;
            if (Settle(queues, q => q.Ack(messageId, nonce, out attempts, out order)) is { } queue)
            {
                acks.Add(new AckItem(messageId, group, attempts));
                settled.Add((queue, order));
            }
            else
            {
                stale.Add(given[i]);
            }
        }

        if (acks.Count > 0)
        {
            try
            {
                await writer.Submit(new AckDeliveries(acks), CancellationToken.None);
            }
            catch
            {
                var now = time.GetUtcNow().ToUnixTimeMilliseconds();
                for (var i = 0; i < acks.Count; i++) settled[i].Queue.Restore(acks[i].MessageId, acks[i].Attempts, now, settled[i].Order);
                throw;
            }
        }
        return TypedResults.Json(new AckResponse(acks.Count, stale), BrokerJsonContext.Default.AckResponse);
    }

    private static async Task<IResult> NackAsync(
        string group, HttpRequest request, DeliveryRegistry registry, ReceiptHandles handles,
        IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        var read = await RequestBody.ReadAsync(request, BrokerJsonContext.Default.NackRequest, options.Value.MaxMessageBytes, false, ct);
        if (read.Problem is not null) return read.Problem;
        var dto = read.Value!;
        var errors = new FieldErrors();
        var retryAfter = errors.Range("retryAfterSeconds", dto.RetryAfterSeconds, 0, 43_200, null);
        if (dto.ReceiptHandle is null) errors.Add("receiptHandle", "is required");
        if (errors.Any) return errors.ToProblem();
        if (!handles.TryRead(dto.ReceiptHandle!, group, out var id, out var nonce)) return InvalidHandle(group, null);

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        long retryAt = retryAfter switch
        {
            null => 0, // the next backoff level
            0 => now, // straight back to the group
            var seconds => now + seconds.Value * 1000L,
        };
        var pending = default(PendingFailure);
        var queue = Settle(registry.QueuesOf(group), q =>
            q.BeginNack(id, nonce, retryAt, options.Value.Delivery.BackoffFor(q.Peek(id)?.Attempts ?? 1), now, out pending));
        if (queue is null) return StaleHandle();

        // Answered only once stored; memory moves on after the store, never before.
        DeliveryState? state;
        try
        {
            state = await queue.CompleteFailureAsync(pending);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Problems.Of(503, "storage-unavailable", "Storage unavailable",
                "The nack could not be stored, so nothing changed: the message is still in flight under this receipt handle. Retry the nack shortly, or let its visibility run out.");
        }
        if (state is not { } stored) return StaleHandle(); // its subscription was deleted meanwhile
        var nextAttemptAt = stored == DeliveryState.Retrying ? pending.Outcome.NextAttemptAt : 0;
        return TypedResults.Json(new NackResponse(dto.ReceiptHandle!, StateNames.Of(stored), Times.ToUtcOrNull(nextAttemptAt)),
            BrokerJsonContext.Default.NackResponse);
    }

    private static async Task<IResult> ChangeInvisibilityAsync(
        string group, HttpRequest request, DeliveryRegistry registry, ReceiptHandles handles,
        IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        var read = await RequestBody.ReadAsync(request, BrokerJsonContext.Default.ChangeInvisibilityRequest, options.Value.MaxMessageBytes, false, ct);
        if (read.Problem is not null) return read.Problem;
        var dto = read.Value!;
        var errors = new FieldErrors();
        if (dto.InvisibleSeconds is null) errors.Add("invisibleSeconds", "is required (1-43200)");
        var seconds = errors.Range("invisibleSeconds", dto.InvisibleSeconds, 1, 43_200, 0)!.Value;
        if (dto.ReceiptHandle is null) errors.Add("receiptHandle", "is required");
        if (errors.Any) return errors.ToProblem();
        if (!handles.TryRead(dto.ReceiptHandle!, group, out var id, out var nonce)) return InvalidHandle(group, null);

        var visibleAt = time.GetUtcNow().ToUnixTimeMilliseconds() + seconds * 1000L;
        return Settle(registry.QueuesOf(group), queue => queue.ChangeInvisibility(id, nonce, visibleAt)) is null
            ? StaleHandle()
            : TypedResults.Json(new ChangeInvisibilityResponse(dto.ReceiptHandle!, Times.ToUtc(visibleAt)),
                BrokerJsonContext.Default.ChangeInvisibilityResponse);
    }

    /// <summary>
    /// A receipt handle names a message, not a topic: the one queue of the group that holds it in
    /// flight settles it. Returns that queue, or null when none did (the handle is stale).
    /// </summary>
    private static SubscriptionQueue? Settle(IEnumerable<SubscriptionQueue> queues, Func<SubscriptionQueue, SettleOutcome> settle)
    {
        foreach (var queue in queues)
        {
            if (settle(queue) == SettleOutcome.Done) return queue;
        }
        return null;
    }

    private static IResult InvalidHandle(string group, int? index) => Problems.Of(400, "invalid-receipt-handle", "Invalid receipt handle",
        $"{(index is { } i ? $"receiptHandles[{i}]" : "receiptHandle")} was not issued by this broker to consumer group '{group}'; pass the receiptHandle exactly as receive returned it.");

    private static IResult StaleHandle() => Problems.Conflict("stale-receipt-handle",
        "The receipt handle's visibility ran out or the message was already acked; receive the message again to get a fresh handle.");
}
