using HalfMsgBroker.Access;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Api;

/// <summary>A subscription's replay (deliver again since a time) and retry-now (no more waiting for backoffs).</summary>
internal static class ReplayApi
{
    /// <summary>Messages per writer command: each page is one short group commit, so other writes interleave.</summary>
    private const int PageSize = 256;
    private const int MaxMessageIds = 1000;

    public static void MapReplayApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/consumer-groups/{group}/subscriptions/{topic}").WithTags("Subscriptions").RequireAuthorization(Policies.ConsumerGroup);
        group.MapPost("/replay", ReplayAsync).Accepts<ReplayRequest>("application/json").Produces<ReplayResponse>().ProducesProblem(400).ProducesProblem(404);
        group.MapPost("/retry-now", RetryNowAsync).Accepts<RetryNowRequest>(isOptional: true, "application/json").Produces<RetryNowResponse>().ProducesProblem(400).ProducesProblem(404);
    }

    private static async Task<IResult> ReplayAsync(
        string group, string topic, HttpContext http, StoreWriter writer, IStoreMonitoring store, SubscriptionLookup subscriptions, AuditLog audit,
        IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        if (Invalid(group, topic) is { } invalid) return invalid;
        var read = await RequestBody.ReadAsync(http.Request, BrokerJsonContext.Default.ReplayRequest, options.Value.MaxMessageBytes, true, ct);
        if (read.Problem is not null) return read.Problem;
        var (reason, badReason) = AuditReason.Read(http.Request, read.Value?.Reason);
        if (badReason is not null) return badReason;

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var errors = new FieldErrors();
        var from = errors.Instant("from", read.Value?.From);
        if (from > now) errors.Add("from", $"is later than the broker's current time ({Times.ToUtc(now):O}): nothing has been committed since then");
        if (errors.Any) return errors.ToProblem();
        if (subscriptions.Find(group, topic) is null) return NoSubscription(group, topic);

        // The commit-time index in pages up to now (messages committed meanwhile are new, not replayed); the
        // writer re-checks each message, so one delivered or purged meanwhile is handled as it now stands.
        var replayed = 0;
        CommittedRef? after = null;
        while (true)
        {
            var page = store.CommittedOn(topic, from!.Value, now, after, PageSize);
            if (page.Count == 0) break;
            replayed += await writer.Submit(new ReplayDeliveries(group, page.Select(r => r.Id).ToList()), ct);
            if (page.Count < PageSize) break;
            after = page[^1];
        }
        audit.Record(http.Caller(), "subscription.replay", $"{group}/{topic}", AuditReason.Append($"from {Times.ToUtc(from!.Value):O}: {replayed} replayed", reason));
        return TypedResults.Json(new ReplayResponse(replayed), BrokerJsonContext.Default.ReplayResponse);
    }

    private static async Task<IResult> RetryNowAsync(
        string group, string topic, HttpContext http, StoreWriter writer, SubscriptionLookup subscriptions, ILiveDeliveries live, AuditLog audit,
        IOptions<BrokerOptions> options, CancellationToken ct)
    {
        if (Invalid(group, topic) is { } invalid) return invalid;
        var read = await RequestBody.ReadAsync(http.Request, BrokerJsonContext.Default.RetryNowRequest, options.Value.MaxMessageBytes, true, ct);
        if (read.Problem is not null) return read.Problem;
        var (reason, badReason) = AuditReason.Read(http.Request, read.Value?.Reason);
        if (badReason is not null) return badReason;

        List<Guid>? ids = null;
        if (read.Value?.MessageIds is { } given)
        {
            if (given.Length is 0 or > MaxMessageIds) return Problems.InvalidField("messageIds", $"must hold 1-{MaxMessageIds} messageIds, or be left out for every retrying delivery");
            ids = new List<Guid>(given.Length);
            for (var i = 0; i < given.Length; i++)
            {
                if (!Guid.TryParse(given[i], out var id)) return Problems.InvalidField($"messageIds[{i}]", "must be a messageId");
                ids.Add(id);
            }
        }
        if (subscriptions.Find(group, topic) is null) return NoSubscription(group, topic);

        // "Every" means the deliveries waiting for a backoff now; the writer moves only those the store holds as retrying.
        var all = ids is null;
        var retried = 0;
        foreach (var chunk in (ids ?? live.RetryingIds(group, topic)).Chunk(PageSize))
        {
            retried += await writer.Submit(new RetryDeliveriesNow(group, topic, chunk), ct);
        }
        audit.Record(http.Caller(), "subscription.retry-now", $"{group}/{topic}",
            AuditReason.Append(all ? $"all: {retried} retried now" : $"{retried} of {ids!.Count} retried now: {string.Join(',', ids.Take(20))}{(ids.Count > 20 ? ",…" : "")}", reason));
        return TypedResults.Json(new RetryNowResponse(retried), BrokerJsonContext.Default.RetryNowResponse);
    }

    private static IResult? Invalid(string group, string topic) =>
        !Names.IsValidName(group) ? Problems.InvalidName("consumerGroup", group)
        : !Names.IsValidName(topic) ? Problems.InvalidName("topic", topic)
        : null;

    private static IResult NoSubscription(string group, string topic) =>
        Problems.NotFound("subscription-not-found", $"Consumer group '{group}' has no subscription to topic '{topic}'.");
}
