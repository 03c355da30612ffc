using HalfMsgBroker.Access;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Engine;
using HalfMsgBroker.OperatorConsole;
using HalfMsgBroker.Hosting;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Api;

/// <summary>
/// What the operator console needs beyond the contract: check a transaction now, pause and resume a
/// push subscription, list every group, and the figures of the overview page.
/// </summary>
internal static class ConsoleApi
{
    public static void MapConsoleApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/transactions/{transactionId}/check", CheckNowAsync).WithTags("Producing").RequireAuthorization(Policies.Transactions)
            .Accepts<ReasonRequest>(isOptional: true, "application/json").Produces<CheckNowResponse>().ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);

        var subscriptions = app.MapGroup("/v1/consumer-groups/{group}/subscriptions/{topic}").WithTags("Subscriptions")
            .RequireAuthorization(Policies.ConsumerGroup);
        subscriptions.MapPost("/pause", (string group, string topic, HttpContext http, StoreWriter writer, AuditLog audit, IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct) =>
                PauseAsync(group, topic, true, http, writer, audit, options, time, ct))
            .Accepts<ReasonRequest>(isOptional: true, "application/json").Produces<SubscriptionView>().ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);
        subscriptions.MapPost("/resume", (string group, string topic, HttpContext http, StoreWriter writer, AuditLog audit, IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct) =>
                PauseAsync(group, topic, false, http, writer, audit, options, time, ct))
            .Accepts<ReasonRequest>(isOptional: true, "application/json").Produces<SubscriptionView>().ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);

        app.MapGet("/v1/consumer-groups", ListConsumerGroups).WithTags("Subscriptions").RequireAuthorization(Policies.Admin)
            .Produces<ConsumerGroupList>();
        app.MapGet("/v1/producer-groups", ListProducerGroups).WithTags("Producer groups").RequireAuthorization(Policies.Admin)
            .Produces<ProducerGroupList>();

        var stats = app.MapGroup("/v1/stats").WithTags("Console").RequireAuthorization(Policies.Admin);
        stats.MapGet("/topics", TopicStats).Produces<TopicStatsView>().ProducesProblem(400);
        stats.MapGet("/overview", Overview).Produces<OverviewView>();
    }

    private static async Task<IResult> CheckNowAsync(
        string transactionId, HttpContext http, StoreWriter writer, AuditLog audit, IOptions<BrokerOptions> options, CancellationToken ct)
    {
        if (!Identifiers.IsValidTransactionId(transactionId)) return Problems.InvalidField("transactionId", Identifiers.TransactionIdRule);
        var (reason, problem) = await ReadReasonAsync(http.Request, options, ct);
        if (problem is not null) return problem;
        var caller = http.Caller();
        var result = await writer.Submit(new CheckNow(transactionId, caller.MayUseProducerGroup), ct);
        var m = result.Message;
        switch (result.Status)
        {
            case CheckNowStatus.NotFound:
                return Problems.NotFound("transaction-not-found", $"No half message has transactionId '{transactionId}'.");
            case CheckNowStatus.NotPrepared:
                return Problems.Conflict("transaction-conflict",
                    $"Transaction '{transactionId}' is already {StateNames.Of(m!.State)}; only a prepared transaction is checked.");
        }
        audit.Record(caller, "transaction.check", transactionId, AuditReason.Append($"messageId={m!.Id} topic={m.Topic}", reason));
        return TypedResults.Json(new CheckNowResponse(transactionId, m.Id.ToString(), StateNames.Of(m.State), Times.ToUtcOrNull(result.NextCheckAt)),
            BrokerJsonContext.Default.CheckNowResponse);
    }

    private static async Task<IResult> PauseAsync(
        string group, string topic, bool pause, HttpContext http, StoreWriter writer, AuditLog audit, IOptions<BrokerOptions> options, TimeProvider time,
        CancellationToken ct)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        if (!Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        var (reason, problem) = await ReadReasonAsync(http.Request, options, ct);
        if (problem is not null) return problem;

        var result = await writer.Submit(new PauseSubscription(group, topic, pause), ct);
        switch (result.Status)
        {
            case PauseStatus.NotFound:
                return Problems.NotFound("subscription-not-found", $"Consumer group '{group}' has no subscription to topic '{topic}'.");
            case PauseStatus.NotPush:
                return Problems.Conflict("not-a-push-subscription",
                    $"Consumer group '{group}' consumes topic '{topic}' by pull; only a push subscription is paused (a pull consumer pauses by not receiving).");
            case PauseStatus.Changed:
                audit.Record(http.Caller(), pause ? "subscription.pause" : "subscription.resume", $"{group}/{topic}", AuditReason.Append(null, reason));
                break;
        }
        return TypedResults.Json(SubscriptionApi.ToView(result.Subscription!, null, null, time.GetUtcNow().ToUnixTimeMilliseconds()),
            BrokerJsonContext.Default.SubscriptionView);
    }

    /// <summary>The reason from the header or the optional JSON body.</summary>
    private static async Task<(string? Reason, IResult? Problem)> ReadReasonAsync(HttpRequest request, IOptions<BrokerOptions> options, CancellationToken ct)
    {
        var read = await RequestBody.ReadAsync(request, BrokerJsonContext.Default.ReasonRequest, options.Value.MaxMessageBytes, true, ct);
        return read.Problem is not null ? (null, read.Problem) : AuditReason.Read(request, read.Value?.Reason);
    }

    private static IResult ListConsumerGroups(SubscriptionLookup subscriptions, IDeliveryFigures live, IStoreMonitoring store, TimeProvider time)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var groups = subscriptions.All()
            .GroupBy(q => q.Group, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new ConsumerGroupView(g.Key, g.OrderBy(q => q.Topic, StringComparer.Ordinal).Select(q =>
            {
                var counts = live.Counts(q.Group, q.Topic);
                return SubscriptionApi.ToView(q.Subscription,
                    new SubscriptionCounts(counts.Ready, counts.InFlight, counts.Retrying, store.CountDeadLetters(q.Group, q.Topic)), null, now)
                    with { PushHealth = HealthOf(q) };
            }).ToList()))
            .ToList();
        return TypedResults.Json(new ConsumerGroupList(groups), BrokerJsonContext.Default.ConsumerGroupList);
    }

    private static IResult ListProducerGroups(IStoreMonitoring store, TimeProvider time, IOptions<BrokerOptions> options)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var groups = store.ProducerGroups().Select(g => SubscriptionApi.ToView(g, null, now, options.Value.Transactions)).ToList();
        return TypedResults.Json(new ProducerGroupList(groups), BrokerJsonContext.Default.ProducerGroupList);
    }

    /// <summary>Null for a pull subscription.</summary>
    internal static PushHealthView? HealthOf(SubscriptionQueue queue)
    {
        if (queue.Subscription.Push is null) return null;
        var h = queue.PushHealth.Read();
        return new PushHealthView(Times.ToUtcOrNull(h.LastSuccessAt), Times.ToUtcOrNull(h.LastFailureAt), h.LastError, h.ConsecutiveFailures);
    }

    private static IResult TopicStats(BrokerMetrics metrics, int? minutes = null)
    {
        var errors = new FieldErrors();
        var span = errors.Range("minutes", minutes, 1, ActivityRates.MaxMinutes, 10)!.Value;
        if (errors.Any) return errors.ToProblem();

        var rates = metrics.Rates;
        var to = rates.CurrentBucket;
        var from = to - span * 60 / ActivityRates.BucketSeconds + 1;
        var topics = rates.Topics(from, to).Select(t => new TopicSeriesView(t.Topic, t.Series[0], t.Series[1], t.Series[2], t.Series[3])).ToList();
        var c = rates.Checks(from, to);
        var bucketMs = ActivityRates.BucketSeconds * 1000L;
        return TypedResults.Json(
            new TopicStatsView(ActivityRates.BucketSeconds, Times.ToUtc(from * bucketMs), Times.ToUtc((to + 1) * bucketMs), topics,
                new CheckSeriesView(c[0], c[1], c[2], c[3], c[4])),
            BrokerJsonContext.Default.TopicStatsView);
    }

    private static IResult Overview(ConsoleFigures figures, BrokerMetrics metrics)
    {
        var f = figures.Store.Current;
        var totals = metrics.Rates.CheckTotals();
        return TypedResults.Json(new OverviewView(
                f.Prepared,
                f.OldestPreparedBornAt is { } oldest ? Times.ToUtc(oldest) : null,
                f.DeadLetters.Where(d => d.Count > 0).Select(d => new DeadLetterCountView(d.Group, d.Topic, d.Count)).ToList(),
                new CheckTotalsView(totals[0], totals[1], totals[2], totals[3], totals[4]),
                Times.ToUtcOrNull(f.TakenAt)),
            BrokerJsonContext.Default.OverviewView);
    }
}
