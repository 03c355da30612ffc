using HalfMsgBroker.Access;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Transactions;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Api;

/// <summary>Producer groups (check endpoints) and consumer groups' subscriptions.</summary>
internal static class SubscriptionApi
{
    private const int DefaultCheckTimeoutMs = 3000;
    private const int DefaultPushTimeoutMs = 5000;
    private const int DefaultMaxAttempts = 16;

    public static void MapSubscriptionApi(this IEndpointRouteBuilder app)
    {
        var producers = app.MapGroup("/v1/producer-groups").WithTags("Producer groups").RequireAuthorization(Policies.ProducerGroup);
        producers.MapPut("/{group}", PutProducerGroupAsync).Accepts<ProducerGroupRequest>(isOptional: true, "application/json").Produces<ProducerGroupView>(201).Produces<ProducerGroupView>().ProducesProblem(400);
        producers.MapGet("/{group}", GetProducerGroup).Produces<ProducerGroupView>().ProducesProblem(404);
        producers.MapPost("/{group}/signing-secret/rotate", SigningApi.RotateProducerGroupAsync)
            .Produces<ProducerGroupView>().ProducesProblem(404).ProducesProblem(409);

        var consumers = app.MapGroup("/v1/consumer-groups/{group}").WithTags("Subscriptions").RequireAuthorization(Policies.ConsumerGroup);
        consumers.MapPut("/subscriptions/{topic}", PutSubscriptionAsync).Accepts<SubscriptionRequest>(isOptional: true, "application/json").Produces<SubscriptionView>(201).Produces<SubscriptionView>().ProducesProblem(400);
        consumers.MapDelete("/subscriptions/{topic}", DeleteSubscriptionAsync).Produces(204).ProducesProblem(404);
        consumers.MapPost("/subscriptions/{topic}/signing-secret/rotate", SigningApi.RotateSubscriptionAsync)
            .Produces<SubscriptionView>().ProducesProblem(404).ProducesProblem(409);
        consumers.MapGet("/", GetConsumerGroup).Produces<ConsumerGroupView>().ProducesProblem(404);
    }

    private static async Task<IResult> PutProducerGroupAsync(
        string group, HttpContext http, StoreWriter writer, Quotas quotas, AuditLog audit, IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        var request = http.Request;
        if (!Names.IsValidName(group)) return Problems.InvalidName("producerGroup", group);
        var read = await RequestBody.ReadAsync(request, BrokerJsonContext.Default.ProducerGroupRequest, options.Value.MaxMessageBytes, true, ct);
        if (read.Problem is not null) return read.Problem;
        var dto = read.Value ?? new ProducerGroupRequest();

        var errors = new FieldErrors();
        var url = errors.AbsoluteHttpUrl("checkUrl", dto.CheckUrl);
        var timeout = errors.Range("checkTimeoutMs", dto.CheckTimeoutMs, 100, 60_000, DefaultCheckTimeoutMs)!.Value;
        var signing = SigningApi.Change(errors, dto.Signing);
        var maxInFlight = errors.Range("maxChecksInFlight", dto.MaxChecksInFlight, 1, ProducerGroupLimits.MaxInFlight, null);
        var maxPerSecond = errors.Range("maxChecksPerSecond", dto.MaxChecksPerSecond, 0, ProducerGroupLimits.MaxPerSecond, null);
        if (errors.Any) return errors.ToProblem();
        if (OutboundUrls.Refuse(request, "checkUrl", url) is { } notAllowed) return notAllowed;

        if (quotas.ProducerGroupRefused(group) is { } refused) return Problems.QuotaExceeded(refused);

        var result = await writer.Submit(new PutProducerGroup(new ProducerGroup(group, url, timeout, MaxChecksInFlight: maxInFlight, MaxChecksPerSecond: maxPerSecond), signing), ct);
        audit.Record(http.Caller(), result.Created ? "producer-group.create" : "producer-group.update", group,
            $"checkUrl={url ?? "none"} checkTimeoutMs={timeout} maxChecksInFlight={maxInFlight?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "default"} maxChecksPerSecond={maxPerSecond?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "default"}{SigningApi.AuditNote(signing, result.CreatedSecret)}");
        return TypedResults.Json(ToView(result.Group, result.CreatedSecret, Now(time), options.Value.Transactions), BrokerJsonContext.Default.ProducerGroupView,
            statusCode: result.Created ? 201 : 200);
    }

    private static IResult GetProducerGroup(string group, IMessageLog store, IOptions<BrokerOptions> options, TimeProvider time)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("producerGroup", group);
        return store.GetProducerGroup(group) is { } stored
            ? TypedResults.Json(ToView(stored, null, Now(time), options.Value.Transactions), BrokerJsonContext.Default.ProducerGroupView)
            : Problems.NotFound("producer-group-not-found", $"Producer group '{group}' has not been registered; PUT /v1/producer-groups/{group} first.");
    }

    private static async Task<IResult> PutSubscriptionAsync(
        string group, string topic, HttpContext http, StoreWriter writer, Quotas quotas, AuditLog audit, IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        var request = http.Request;
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        if (!Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        var read = await RequestBody.ReadAsync(request, BrokerJsonContext.Default.SubscriptionRequest, options.Value.MaxMessageBytes, true, ct);
        if (read.Problem is not null) return read.Problem;
        var dto = read.Value ?? new SubscriptionRequest();

        var errors = new FieldErrors();
        var filter = TagFilter.TryParse(dto.TagFilter, out var filterError);
        if (filter is null) errors.Add("tagFilter", filterError!);
        PushTarget? push = null;
        if (dto.Push is { } p)
        {
            if (p.Url is null) errors.Add("push.url", "is required for a push subscription (omit push to consume by pull)");
            var url = errors.AbsoluteHttpUrl("push.url", p.Url);
            var timeout = errors.Range("push.timeoutMs", p.TimeoutMs, 100, 60_000, DefaultPushTimeoutMs)!.Value;
            if (url is not null) push = new PushTarget(url, timeout);
        }
        var maxAttempts = errors.Range("maxAttempts", dto.MaxAttempts, 1, 1000, DefaultMaxAttempts)!.Value;
        var onExhausted = ExhaustedAction.DeadLetter;
        switch (dto.OnExhausted)
        {
            case null or "deadLetter": break;
            case "discard": onExhausted = ExhaustedAction.Discard; break;
            default: errors.Add("onExhausted", "must be deadLetter or discard"); break;
        }
        var signing = SigningApi.Change(errors, dto.Signing);
        if (errors.Any) return errors.ToProblem();
        if (OutboundUrls.Refuse(request, "push.url", push?.Url) is { } notAllowed) return notAllowed;

        if (quotas.SubscriptionRefused(group, topic) is { } refused) return Problems.QuotaExceeded(refused);

        var result = await writer.Submit(new PutSubscription(new Subscription(group, topic, filter!, push, maxAttempts, onExhausted, 0), signing), ct);
        audit.Record(http.Caller(), result.Created ? "subscription.create" : "subscription.update", $"{group}/{topic}",
            $"tagFilter={filter!.Expression} push={push?.Url ?? "none"} maxAttempts={maxAttempts} onExhausted={StateNames.Of(onExhausted)}{SigningApi.AuditNote(signing, result.CreatedSecret)}");
        return TypedResults.Json(ToView(result.Subscription, null, result.CreatedSecret, Now(time)), BrokerJsonContext.Default.SubscriptionView,
            statusCode: result.Created ? 201 : 200);
    }

    private static async Task<IResult> DeleteSubscriptionAsync(string group, string topic, HttpContext http, StoreWriter writer, AuditLog audit, CancellationToken ct)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        if (!Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        if (!await writer.Submit(new DeleteSubscription(group, topic, writer), ct))
        {
            return Problems.NotFound("subscription-not-found", $"Consumer group '{group}' has no subscription to topic '{topic}'.");
        }
        audit.Record(http.Caller(), "subscription.delete", $"{group}/{topic}");
        return TypedResults.NoContent();
    }

    private static IResult GetConsumerGroup(string group, SubscriptionLookup subscriptions, IDeliveryFigures live, IStoreMonitoring store, TimeProvider time)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        var queues = subscriptions.QueuesOf(group).ToList();
        if (queues.Count == 0) return Problems.NotFound("consumer-group-not-found", $"Consumer group '{group}' has no subscriptions.");

        var now = Now(time);
        var views = queues.Select(q =>
        {
            var counts = live.Counts(group, q.Topic);
            return ToView(q.Subscription, new SubscriptionCounts(counts.Ready, counts.InFlight, counts.Retrying, store.CountDeadLetters(group, q.Topic)), null, now)
                with { PushHealth = ConsoleApi.HealthOf(q) };
        }).ToList();
        return TypedResults.Json(new ConsumerGroupView(group, views), BrokerJsonContext.Default.ConsumerGroupView);
    }

    /// <param name="shownOnce">The secret's text, only for the answer that created or rotated it.</param>
    /// <param name="defaults">The broker's limits, shown for a group that sets none of its own.</param>
    internal static ProducerGroupView ToView(ProducerGroup g, string? shownOnce, long now, TransactionOptions defaults)
    {
        var signing = SigningApi.Fields.Of(g.Signing, shownOnce, now);
        var perSecond = ProducerGroupLimits.PerSecondOf(g, defaults);
        return new(g.Name, g.CheckUrl, g.CheckTimeoutMs,
            signing.Signing, signing.Secret, signing.CreatedAt, signing.Fingerprint, signing.PreviousExpiresAt)
        {
            MaxChecksInFlight = ProducerGroupLimits.InFlightOf(g, defaults),
            MaxChecksPerSecond = perSecond > 0 ? perSecond : null,
        };
    }

    /// <param name="shownOnce">The secret's text, only for the answer that created or rotated it.</param>
    internal static SubscriptionView ToView(Subscription s, SubscriptionCounts? counts, string? shownOnce, long now)
    {
        var signing = SigningApi.Fields.Of(s.Signing, shownOnce, now);
        return new(
            s.Group,
            s.Topic,
            s.TagFilter.Expression,
            s.Push is { } p ? new PushView(p.Url, p.TimeoutMs) : null,
            s.MaxAttempts,
            StateNames.Of(s.OnExhausted),
            Times.ToUtc(s.CreatedAt),
            counts,
            signing.Signing, signing.Secret, signing.CreatedAt, signing.Fingerprint, signing.PreviousExpiresAt,
            s.Paused);
    }

    private static long Now(TimeProvider time) => time.GetUtcNow().ToUnixTimeMilliseconds();
}
