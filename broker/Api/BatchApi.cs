using HalfMsgBroker.Access;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Api;

/// <summary>
/// Batch endpoints for producers that can batch: plain sends, half messages, commits and rollbacks,
/// several per request. A batch is refused as a whole (400, 403, 429: nothing stored) or stored as
/// one writer submission, so its items share one group commit; the answer lists each item's
/// outcome in order, as the single endpoint would have answered it.
/// </summary>
internal static class BatchApi
{
    public const int MaxSendItems = 100;
    public const int MaxTransactionIds = 1000;

    public static void MapBatchApi(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").WithTags("Producing");
        v1.MapPost("/messages/batch", SendAsync).RequireAuthorization(Policies.Produce)
            .Accepts<SendMessageBatchRequest>("application/json").WithBrokerSpan("send batch")
            .Produces<SendBatchResponse>().ProducesProblem(400).ProducesProblem(403).ProducesProblem(413).ProducesProblem(429);
        v1.MapPost("/half-messages/batch", SendHalfAsync).RequireAuthorization(Policies.Produce)
            .Accepts<SendHalfMessageBatchRequest>("application/json").WithBrokerSpan("half message batch")
            .Produces<SendBatchResponse>().ProducesProblem(400).ProducesProblem(403).ProducesProblem(413).ProducesProblem(429);
        v1.MapPost("/transactions/commit",
                (HttpContext http, StoreWriter writer, AuditLog audit, IOptions<BrokerOptions> options, CancellationToken ct) => EndAsync(true, http, writer, audit, options, ct))
            .Accepts<EndTransactionBatchRequest>("application/json").WithBrokerSpan("commit batch").RequireAuthorization(Policies.Transactions).Produces<EndTransactionBatchResponse>().ProducesProblem(400).ProducesProblem(413);
        v1.MapPost("/transactions/rollback",
                (HttpContext http, StoreWriter writer, AuditLog audit, IOptions<BrokerOptions> options, CancellationToken ct) => EndAsync(false, http, writer, audit, options, ct))
            .Accepts<EndTransactionBatchRequest>("application/json").WithBrokerSpan("rollback batch").RequireAuthorization(Policies.Transactions).Produces<EndTransactionBatchResponse>().ProducesProblem(400).ProducesProblem(413);
    }

    private static async Task<IResult> SendAsync(
        HttpContext http, StoreWriter writer, Quotas quotas, IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        var read = await RequestBody.ReadAsync(http.Request, BrokerJsonContext.Default.SendMessageBatchRequest, options.Value.MaxMessageBytes, false, ct);
        if (read.Problem is not null) return read.Problem;
        var items = read.Value!.Items;
        if (CountProblem("items", items?.Count, MaxSendItems) is { } tooMany) return tooMany;

        var errors = new FieldErrors();
        var inputs = Validate(items!, errors, (item, itemErrors) =>
        {
            if (!Names.IsValidName(item.Topic)) itemErrors.Add("topic", NameRule);
            if (item.IdempotencyKey is not null && !Identifiers.IsValidIdempotencyKey(item.IdempotencyKey))
            {
                itemErrors.Add("idempotencyKey", "must be 1-255 characters without control characters");
            }
            return ProducerApi.Message(item.Topic ?? "", item.Tag, item.Keys, item.Properties, item.Body, item.DelaySeconds, item.DeliverAt,
                http.Request, itemErrors, time) with { IdempotencyKey = item.IdempotencyKey, OrderingKey = itemErrors.OrderingKey(item.OrderingKey) };
        });
        if (errors.Any) return errors.ToProblem();
        if (Refused(http.Caller(), quotas, inputs, half: false) is { } refused) return refused;

        var results = await writer.Submit(new CommandBatch<SendResult>(inputs.Select(m => new SendMessage(m, half: false)).ToArray()), ct);
        foreach (var input in inputs) quotas.TopicUsed(input.Topic);
        var answer = new SendBatchResult[results.Length];
        for (var i = 0; i < results.Length; i++)
        {
            var (status, m) = results[i];
            answer[i] = status == SendStatus.Conflict
                ? new SendBatchResult(null, null, null, "conflict", "idempotency-conflict",
                    $"idempotencyKey '{inputs[i].IdempotencyKey}' was already used on topic '{inputs[i].Topic}' for a different body (message {m.Id}); use a new key for a new message.")
                : new SendBatchResult(m.Id.ToString(), null, StateNames.Of(m.State), StatusName(status), null, null);
        }
        return TypedResults.Json(new SendBatchResponse(answer), BrokerJsonContext.Default.SendBatchResponse);
    }

    private static async Task<IResult> SendHalfAsync(
        HttpContext http, StoreWriter writer, Quotas quotas, IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        var read = await RequestBody.ReadAsync(http.Request, BrokerJsonContext.Default.SendHalfMessageBatchRequest, options.Value.MaxMessageBytes, false, ct);
        if (read.Problem is not null) return read.Problem;
        var items = read.Value!.Items;
        if (CountProblem("items", items?.Count, MaxSendItems) is { } tooMany) return tooMany;

        var errors = new FieldErrors();
        var inputs = Validate(items!, errors, (item, itemErrors) =>
        {
            if (!Names.IsValidName(item.Topic)) itemErrors.Add("topic", NameRule);
            if (!Names.IsValidName(item.ProducerGroup)) itemErrors.Add("producerGroup", NameRule);
            if (item.TransactionId is not null && !Identifiers.IsValidTransactionId(item.TransactionId))
            {
                itemErrors.Add("transactionId", Identifiers.TransactionIdRule);
            }
            var immunity = itemErrors.Range("checkImmunitySeconds", item.CheckImmunitySeconds, 0, 86_400, null);
            return ProducerApi.Message(item.Topic ?? "", item.Tag, item.Keys, item.Properties, item.Body, item.DelaySeconds, item.DeliverAt,
                http.Request, itemErrors, time) with
            {
                ProducerGroup = item.ProducerGroup,
                TransactionId = item.TransactionId ?? Guid.CreateVersion7().ToString("N"),
                CheckImmunity = immunity is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
                OrderingKey = itemErrors.OrderingKey(item.OrderingKey),
            };
        });
        if (errors.Any) return errors.ToProblem();
        if (Refused(http.Caller(), quotas, inputs, half: true) is { } refused) return refused;

        var results = await writer.Submit(new CommandBatch<SendResult>(inputs.Select(m => new SendMessage(m, half: true)).ToArray()), ct);
        foreach (var input in inputs) quotas.TopicUsed(input.Topic);
        var answer = new SendBatchResult[results.Length];
        for (var i = 0; i < results.Length; i++)
        {
            var (status, m) = results[i];
            // As the single endpoint: nothing about the other message, it may be another producer's.
            answer[i] = status == SendStatus.Conflict
                ? new SendBatchResult(null, inputs[i].TransactionId, null, "conflict", "transaction-conflict",
                    $"transactionId '{inputs[i].TransactionId}' is already used by a half message with a different topic, producer group or body; transaction ids are unique across the broker, so choose another.")
                : new SendBatchResult(m.Id.ToString(), m.TransactionId, StateNames.Of(m.State), StatusName(status), null, null);
        }
        return TypedResults.Json(new SendBatchResponse(answer), BrokerJsonContext.Default.SendBatchResponse);
    }

    private static async Task<IResult> EndAsync(
        bool commit, HttpContext http, StoreWriter writer, AuditLog audit, IOptions<BrokerOptions> options, CancellationToken ct)
    {
        var read = await RequestBody.ReadAsync(http.Request, BrokerJsonContext.Default.EndTransactionBatchRequest, options.Value.MaxMessageBytes, false, ct);
        if (read.Problem is not null) return read.Problem;
        var ids = read.Value!.TransactionIds;
        if (CountProblem("transactionIds", ids?.Count, MaxTransactionIds) is { } tooMany) return tooMany;

        var errors = new FieldErrors();
        for (var i = 0; i < ids!.Count; i++)
        {
            if (!Identifiers.IsValidTransactionId(ids[i])) errors.Add($"transactionIds[{i}]", Identifiers.TransactionIdRule);
        }
        if (errors.Any) return errors.ToProblem();

        var caller = http.Caller();
        var commands = ids.Select(id => new EndTransaction(id!, commit, caller.MayUseProducerGroup)).ToArray();
        var results = await writer.Submit(new CommandBatch<EndResult>(commands), ct);
        var answer = new EndTransactionBatchResult[results.Length];
        for (var i = 0; i < results.Length; i++)
        {
            var id = ids[i]!;
            var (status, m) = results[i];
            if (status == EndStatus.Applied && caller.IsAdminKey)
            {
                audit.Record(caller, commit ? "transaction.commit" : "transaction.rollback", id, $"messageId={m!.Id} topic={m.Topic}");
            }
            answer[i] = status switch
            {
                EndStatus.NotFound => new EndTransactionBatchResult(id, null, null, "notFound", "transaction-not-found",
                    $"No half message has transactionId '{id}'."),
                EndStatus.Conflict => new EndTransactionBatchResult(id, m!.Id.ToString(), StateNames.Of(m.State), "conflict", "transaction-conflict",
                    $"Transaction '{id}' is already {StateNames.Of(m.State)}{ResolvedBySuffix(m)}; it cannot be {(commit ? "committed" : "rolled back")}."),
                _ => new EndTransactionBatchResult(id, m!.Id.ToString(), StateNames.Of(m.State), StateNames.Of(m.State), null, null),
            };
        }
        return TypedResults.Json(new EndTransactionBatchResponse(answer), BrokerJsonContext.Default.EndTransactionBatchResponse);
    }

    private const string NameRule = "must be 1-127 characters of A-Z a-z 0-9 _ . -";

    private static IResult? CountProblem(string field, int? count, int max) =>
        count is null or 0 ? Problems.InvalidField(field, $"is required: a list of 1-{max} entries")
        : count > max ? Problems.InvalidField(field, $"at most {max} entries per request (got {count}); split the batch")
        : null;

    /// <summary>
    /// Every item is authorized and quota-checked exactly as its single request would be; the first
    /// item that would be refused refuses the batch, named, before anything is stored.
    /// </summary>
    private static IResult? Refused(Caller caller, Quotas quotas, NewMessage[] inputs, bool half)
    {
        for (var i = 0; i < inputs.Length; i++)
        {
            var m = inputs[i];
            if (!caller.MayProduceTo(m.Topic))
            {
                return Problems.Forbidden(caller, $"items[{i}] sends to topic '{m.Topic}', which needs a producer key whose topics include it; nothing in the batch was stored");
            }
            if (half && !caller.MayUseProducerGroup(m.ProducerGroup))
            {
                return Problems.Forbidden(caller,
                    $"items[{i}] is a half message of producer group '{m.ProducerGroup}', which needs a producer key whose producerGroups include it; nothing in the batch was stored");
            }
        }
        for (var i = 0; i < inputs.Length; i++)
        {
            if (quotas.TopicRefused(inputs[i].Topic) is { } refused)
            {
                return Problems.QuotaExceeded($"items[{i}] (topic '{inputs[i].Topic}'): {refused} Nothing in the batch was stored.");
            }
        }
        return null;
    }

    private static string StatusName(SendStatus status) => status == SendStatus.Created ? "created" : "replayed";

    private static string ResolvedBySuffix(MessageSnapshot m) =>
        StateNames.Of(m.ResolvedBy) is { } by ? $" (resolved by {by})" : "";

    /// <summary>Validates each item into a message, its errors named <c>items[i].field</c>; a null item is an error of its own.</summary>
    private static NewMessage[] Validate<TItem>(List<TItem?> items, FieldErrors errors, Func<TItem, FieldErrors, NewMessage> validate)
        where TItem : class
    {
        var inputs = new NewMessage[items.Count];
        for (var i = 0; i < inputs.Length; i++)
        {
            if (items[i] is not { } item)
            {
                errors.Add($"items[{i}]", "must be an object");
                continue;
            }
            var itemErrors = new FieldErrors();
            inputs[i] = validate(item, itemErrors);
            errors.AddAll($"items[{i}].", itemErrors);
        }
        return inputs;
    }
}
