using HalfMsgBroker.Access;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.DiskSpace;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Api;

/// <summary>Sending plain and half messages, ending transactions, and looking transactions up.</summary>
internal static class ProducerApi
{
    public static void MapProducerApi(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").WithTags("Producing");
        v1.MapPost("/topics/{topic}/messages", SendAsync).RequireAuthorization(Policies.SendToTopic).RefusedWhenDiskLow()
            .Accepts<SendMessageRequest>("application/json").WithBrokerSpan("send")
            .Produces<SendMessageResponse>(201).Produces<SendMessageResponse>(200).ProducesProblem(400).ProducesProblem(409).ProducesProblem(413).ProducesProblem(429);
        v1.MapPost("/topics/{topic}/half-messages", SendHalfAsync).RequireAuthorization(Policies.SendToTopic).RefusedWhenDiskLow()
            .Accepts<SendHalfMessageRequest>("application/json").WithBrokerSpan("half message")
            .Produces<HalfMessageResponse>(201).Produces<HalfMessageResponse>(200).ProducesProblem(400).ProducesProblem(403).ProducesProblem(409).ProducesProblem(413).ProducesProblem(429);
        v1.MapPost("/transactions/{transactionId}/commit",
                (string transactionId, HttpContext http, StoreWriter writer, AuditLog audit, CancellationToken ct) => EndAsync(transactionId, true, http, writer, audit, ct))
            .WithBrokerSpan("commit").RequireAuthorization(Policies.Transactions).Produces<EndTransactionResponse>().ProducesProblem(404).ProducesProblem(409);
        v1.MapPost("/transactions/{transactionId}/rollback",
                (string transactionId, HttpContext http, StoreWriter writer, AuditLog audit, CancellationToken ct) => EndAsync(transactionId, false, http, writer, audit, ct))
            .WithBrokerSpan("rollback").RequireAuthorization(Policies.Transactions).Produces<EndTransactionResponse>().ProducesProblem(404).ProducesProblem(409);
        v1.MapGet("/transactions/{transactionId}", GetTransaction).RequireAuthorization(Policies.Transactions)
            .Produces<TransactionView>().ProducesProblem(404);
        v1.MapGet("/transactions", ListTransactions).RequireAuthorization(Policies.Transactions)
            .Produces<TransactionList>().ProducesProblem(400);
        app.MapBatchApi();
        app.MapTransactionApi();
    }

    private static async Task<IResult> SendAsync(
        string topic, HttpRequest request, StoreWriter writer, Quotas quotas, IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        if (!Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        if (quotas.TopicRefused(topic) is { } refused) return Problems.QuotaExceeded(refused);
        var idempotencyKey = request.Headers["Idempotency-Key"].ToString();
        if (idempotencyKey.Length > 0 && !Identifiers.IsValidIdempotencyKey(idempotencyKey))
        {
            return Problems.InvalidField("Idempotency-Key", "must be 1-255 characters without control characters");
        }

        var read = await RequestBody.ReadAsync(request, BrokerJsonContext.Default.SendMessageRequest, options.Value.MaxMessageBytes, false, ct);
        if (read.Problem is not null) return read.Problem;
        var dto = read.Value!;

        var errors = new FieldErrors();
        var input = Message(topic, dto.Tag, dto.Keys, dto.Properties, dto.Body, dto.DelaySeconds, dto.DeliverAt, request, errors, time) with
        {
            IdempotencyKey = idempotencyKey.Length > 0 ? idempotencyKey : null,
            OrderingKey = errors.OrderingKey(dto.OrderingKey),
        };
        if (errors.Any) return errors.ToProblem();

        var result = await writer.Submit(new SendMessage(input, half: false), ct);
        quotas.TopicUsed(topic);
        var body = new SendMessageResponse(result.Message.Id.ToString(), StateNames.Of(result.Message.State));
        return result.Status switch
        {
            SendStatus.Created => TypedResults.Json(body, BrokerJsonContext.Default.SendMessageResponse, statusCode: 201),
            SendStatus.Replayed => TypedResults.Json(body, BrokerJsonContext.Default.SendMessageResponse),
            _ => Problems.Conflict("idempotency-conflict",
                $"Idempotency-Key '{idempotencyKey}' was already used on topic '{topic}' for a different body (message {result.Message.Id}); use a new key for a new message."),
        };
    }

    private static async Task<IResult> SendHalfAsync(
        string topic, HttpContext http, StoreWriter writer, Quotas quotas, IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        var request = http.Request;
        if (!Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        if (quotas.TopicRefused(topic) is { } refused) return Problems.QuotaExceeded(refused);
        var read = await RequestBody.ReadAsync(request, BrokerJsonContext.Default.SendHalfMessageRequest, options.Value.MaxMessageBytes, false, ct);
        if (read.Problem is not null) return read.Problem;
        var dto = read.Value!;

        if (!Names.IsValidName(dto.ProducerGroup)) return Problems.InvalidName("producerGroup", dto.ProducerGroup);
        var caller = http.Caller();
        if (!caller.MayUseProducerGroup(dto.ProducerGroup))
        {
            return Problems.Forbidden(caller, $"half messages of producer group '{dto.ProducerGroup}' need a producer key whose producerGroups include it");
        }
        var errors = new FieldErrors();
        if (dto.TransactionId is not null && !Identifiers.IsValidTransactionId(dto.TransactionId))
        {
            errors.Add("transactionId", Identifiers.TransactionIdRule);
        }
        var immunity = errors.Range("checkImmunitySeconds", dto.CheckImmunitySeconds, 0, 86_400, null);
        var input = Message(topic, dto.Tag, dto.Keys, dto.Properties, dto.Body, dto.DelaySeconds, dto.DeliverAt, request, errors, time) with
        {
            ProducerGroup = dto.ProducerGroup,
            TransactionId = dto.TransactionId ?? Guid.CreateVersion7().ToString("N"),
            CheckImmunity = immunity is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            OrderingKey = errors.OrderingKey(dto.OrderingKey),
        };
        if (errors.Any) return errors.ToProblem();

        var result = await writer.Submit(new SendMessage(input, half: true), ct);
        quotas.TopicUsed(topic);
        var m = result.Message;
        var body = new HalfMessageResponse(m.Id.ToString(), m.TransactionId!, StateNames.Of(m.State));
        return result.Status switch
        {
            SendStatus.Created => TypedResults.Json(body, BrokerJsonContext.Default.HalfMessageResponse, statusCode: 201),
            SendStatus.Replayed => TypedResults.Json(body, BrokerJsonContext.Default.HalfMessageResponse),
            // Nothing about the other message: it may be another producer's.
            _ => Problems.Conflict("transaction-conflict",
                $"transactionId '{m.TransactionId}' is already used by a half message with a different topic, producer group or body; transaction ids are unique across the broker, so choose another."),
        };
    }

    private static async Task<IResult> EndAsync(string transactionId, bool commit, HttpContext http, StoreWriter writer, AuditLog audit, CancellationToken ct)
    {
        if (!Identifiers.IsValidTransactionId(transactionId)) return Problems.InvalidField("transactionId", Identifiers.TransactionIdRule);
        var (reason, badReason) = AuditReason.Read(http.Request);
        if (badReason is not null) return badReason;
        var caller = http.Caller();
        var result = await writer.Submit(new EndTransaction(transactionId, commit, caller.MayUseProducerGroup), ct);
        var m = result.Message;
        // A producer ending its own transactions is routine; an admin key doing it, or anyone giving a reason, is an operator's act.
        if (result.Status == EndStatus.Applied && (caller.IsAdminKey || reason is not null))
        {
            audit.Record(caller, commit ? "transaction.commit" : "transaction.rollback", transactionId,
                AuditReason.Append($"messageId={m!.Id} topic={m.Topic}", reason));
        }
        return result.Status switch
        {
            EndStatus.NotFound => Problems.NotFound("transaction-not-found", $"No half message has transactionId '{transactionId}'."),
            EndStatus.Conflict => Problems.Conflict("transaction-conflict",
                $"Transaction '{transactionId}' is already {StateNames.Of(m!.State)}{ResolvedBySuffix(m)}; it cannot be {(commit ? "committed" : "rolled back")}."),
            _ => TypedResults.Json(new EndTransactionResponse(transactionId, m!.Id.ToString(), StateNames.Of(m.State)),
                BrokerJsonContext.Default.EndTransactionResponse),
        };
    }

    private static IResult GetTransaction(string transactionId, HttpContext http, IMessageLog store)
    {
        if (!Identifiers.IsValidTransactionId(transactionId)) return Problems.InvalidField("transactionId", Identifiers.TransactionIdRule);
        var m = store.FindByTransactionId(transactionId);
        return m is null || !http.Caller().MayUseProducerGroup(m.ProducerGroup)
            ? Problems.NotFound("transaction-not-found", $"No half message has transactionId '{transactionId}'.")
            : TypedResults.Json(TransactionApi.WithMessages(ToView(m), m, store), BrokerJsonContext.Default.TransactionView);
    }

    private static IResult ListTransactions(
        HttpContext http, IStoreMonitoring store, TimeProvider time, string? state = null, string? producerGroup = null, string? topic = null,
        int? limit = null, string? after = null, long? minAgeSeconds = null)
    {
        var errors = new FieldErrors();
        if (minAgeSeconds is < 0 or > 10L * 365 * 86_400) errors.Add("minAgeSeconds", "must be between 0 and 315360000 (ten years)");
        var bornBefore = minAgeSeconds is { } age ? time.GetUtcNow().ToUnixTimeMilliseconds() - age * 1000 : long.MaxValue;
        MessageState? wanted = null;
        if (state is not null)
        {
            if (StateNames.TryParseMessageState(state, out var parsed)) wanted = parsed;
            else errors.Add("state", "must be prepared, committed or rolledBack");
        }
        if (producerGroup is not null && !Names.IsValidName(producerGroup)) return Problems.InvalidName("producerGroup", producerGroup);
        if (topic is not null && !Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        var take = errors.Range("limit", limit, 1, 1000, 100)!.Value;
        Guid? cursor = null;
        if (after is not null)
        {
            if (Guid.TryParse(after, out var id)) cursor = id;
            else errors.Add("after", "must be the 'next' cursor of a previous page");
        }
        if (errors.Any) return errors.ToProblem();

        // One more than the page, so the last page says so (next: null) instead of pointing at an empty one.
        var caller = http.Caller();
        var page = store.Transactions(wanted, producerGroup, topic, cursor, take + 1, m => m.BornAt <= bornBefore && caller.MayUseProducerGroup(m.ProducerGroup));
        var next = page.Count > take ? page[take - 1].Id.ToString() : null;
        return TypedResults.Json(new TransactionList(page.Take(take).Select(ToView).ToList(), next), BrokerJsonContext.Default.TransactionList);
    }

    internal static TransactionView ToView(StoredMessage m) => new(
        m.TransactionId!,
        m.Id.ToString(),
        m.Topic,
        m.ProducerGroup,
        StateNames.Of(m.State),
        m.CheckCount,
        StateNames.Of(m.ResolvedBy),
        Times.ToUtc(m.BornAt),
        Times.ToUtcOrNull(m.ResolvedAt),
        Times.ToUtcOrNull(m.LastCheckAt),
        m.LastCheckResult,
        m.State == MessageState.Prepared ? Times.ToUtcOrNull(m.NextCheckAt) : null,
        m.UnreachableCount,
        m.UnknownCount);

    private static string ResolvedBySuffix(MessageSnapshot m) =>
        StateNames.Of(m.ResolvedBy) is { } by ? $" (resolved by {by})" : "";

    /// <summary>The fields plain and half messages share, validated into <paramref name="errors"/>.</summary>
    internal static NewMessage Message(
        string topic, string? tag, string[]? keys, Dictionary<string, string?>? properties, System.Text.Json.JsonElement body,
        int? delaySeconds, string? deliverAt, HttpRequest request, FieldErrors errors, TimeProvider time) => new(
        topic,
        errors.Tag("tag", tag),
        errors.Keys(keys),
        errors.Properties(properties),
        errors.Body(body),
        errors.DeliverAt(delaySeconds, deliverAt, time.GetUtcNow().ToUnixTimeMilliseconds()),
        TraceParent(request));

    private static string? TraceParent(HttpRequest request)
    {
        var value = request.Headers["traceparent"].ToString();
        return Identifiers.IsTraceParent(value) ? value : null;
    }
}
