using HalfMsgBroker.Access;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Api;

/// <summary>
/// Pull consumption: long-poll receive, ack, nack and change-invisibility by receipt handle. The leases themselves
/// are <see cref="IPullDeliveries"/>'s; this turns them into receipt handles and HTTP answers.
/// </summary>
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
        string group, string topic, HttpRequest request, SubscriptionLookup subscriptions, IPullDeliveries deliveries, ReceiptHandles handles,
        IOptions<BrokerOptions> options, CancellationToken ct)
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

        var subscription = subscriptions.Find(group, topic)?.Subscription;
        if (subscription is null) return Problems.NotFound("subscription-not-found", $"Consumer group '{group}' has no subscription to topic '{topic}'; PUT one first.");
        if (subscription.Push is not null)
        {
            return Problems.Conflict("subscription-is-push", $"Consumer group '{group}' receives topic '{topic}' by push; remove push from the subscription to pull.");
        }

        var pulled = await deliveries.ReceiveAsync(group, topic, max, TimeSpan.FromSeconds(wait), TimeSpan.FromSeconds(invisible), ct);
        var messages = new List<ReceivedMessage>(pulled.Count);
        foreach (var (payload, nonce, attempt, orderingKey) in pulled)
        {
            messages.Add(new ReceivedMessage(
                payload.Id.ToString(), handles.Issue(payload.Id, nonce, group), payload.Topic, payload.Tag, payload.Keys,
                payload.Properties, new RawJson(payload.Body), attempt, Times.ToUtc(payload.BornAt), payload.TraceParent, orderingKey));
        }
        return TypedResults.Json(new ReceiveResponse(messages), BrokerJsonContext.Default.ReceiveResponse);
    }

    private static async Task<IResult> AckAsync(
        string group, HttpRequest request, IPullDeliveries deliveries, ReceiptHandles handles, IOptions<BrokerOptions> options, CancellationToken ct)
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

        var outcome = await deliveries.AckAsync(group, parsed);
        return TypedResults.Json(new AckResponse(outcome.Acked, outcome.StaleIndexes.Select(i => given[i]).ToList()), BrokerJsonContext.Default.AckResponse);
    }

    private static async Task<IResult> NackAsync(
        string group, HttpRequest request, IPullDeliveries deliveries, ReceiptHandles handles,
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

        // Answered only once stored; memory moves on after the store, never before.
        NackStored? stored;
        try
        {
            stored = await deliveries.NackAsync(group, id, nonce, retryAt, now);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Problems.Of(503, "storage-unavailable", "Storage unavailable",
                "The nack could not be stored, so nothing changed: the message is still in flight under this receipt handle. Retry the nack shortly, or let its visibility run out.");
        }
        if (stored is not { } s) return StaleHandle();
        return TypedResults.Json(new NackResponse(dto.ReceiptHandle!, StateNames.Of(s.State), Times.ToUtcOrNull(s.NextAttemptAt)),
            BrokerJsonContext.Default.NackResponse);
    }

    private static async Task<IResult> ChangeInvisibilityAsync(
        string group, HttpRequest request, IPullDeliveries deliveries, ReceiptHandles handles,
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
        return deliveries.ChangeInvisibility(group, id, nonce, visibleAt)
            ? TypedResults.Json(new ChangeInvisibilityResponse(dto.ReceiptHandle!, Times.ToUtc(visibleAt)),
                BrokerJsonContext.Default.ChangeInvisibilityResponse)
            : StaleHandle();
    }

    private static IResult InvalidHandle(string group, int? index) => Problems.Of(400, "invalid-receipt-handle", "Invalid receipt handle",
        $"{(index is { } i ? $"receiptHandles[{i}]" : "receiptHandle")} was not issued by this broker to consumer group '{group}'; pass the receiptHandle exactly as receive returned it.");

    private static IResult StaleHandle() => Problems.Conflict("stale-receipt-handle",
        "The receipt handle's visibility ran out or the message was already acked; receive the message again to get a fresh handle.");
}
