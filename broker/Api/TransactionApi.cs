using HalfMsgBroker.Access;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.DiskSpace;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Api;

/// <summary>
/// Multi-message transactions: <c>POST /v1/transactions</c> prepares 1–100 messages, across topics,
/// as one transaction of one producer group, in one store write. It is committed, rolled back and
/// checked as a whole through its transactionId with the existing transaction endpoints.
/// </summary>
internal static class TransactionApi
{
    public const int MaxMessages = 100;

    public static void MapTransactionApi(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/v1").WithTags("Producing")
            .MapPost("/transactions", SendAsync).RequireAuthorization(Policies.Produce).RefusedWhenDiskLow()
            .Accepts<SendTransactionRequest>("application/json").WithBrokerSpan("transaction")
            .Produces<SendTransactionResponse>(201).Produces<SendTransactionResponse>(200)
            .ProducesProblem(400).ProducesProblem(403).ProducesProblem(409).ProducesProblem(413).ProducesProblem(429);
    }

    private static async Task<IResult> SendAsync(
        HttpContext http, StoreWriter writer, Quotas quotas, IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        var read = await RequestBody.ReadAsync(http.Request, BrokerJsonContext.Default.SendTransactionRequest, options.Value.MaxMessageBytes, false, ct);
        if (read.Problem is not null) return read.Problem;
        var dto = read.Value!;
        if (!Names.IsValidName(dto.ProducerGroup)) return Problems.InvalidName("producerGroup", dto.ProducerGroup);
        var items = dto.Messages;
        if (items is null or { Count: 0 }) return Problems.InvalidField("messages", $"is required: a list of 1-{MaxMessages} messages");
        if (items.Count > MaxMessages)
        {
            return Problems.InvalidField("messages", $"at most {MaxMessages} messages per transaction (got {items.Count})");
        }

        var errors = new FieldErrors();
        if (dto.TransactionId is not null && !Identifiers.IsValidTransactionId(dto.TransactionId))
        {
            errors.Add("transactionId", Identifiers.TransactionIdRule);
        }
        var immunity = errors.Range("checkImmunitySeconds", dto.CheckImmunitySeconds, 0, 86_400, null);
        var messages = new NewMessage[items.Count];
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i] is not { } item)
            {
                errors.Add($"messages[{i}]", "must be an object");
                continue;
            }
            var itemErrors = new FieldErrors();
            if (!Names.IsValidName(item.Topic)) itemErrors.Add("topic", "must be 1-127 characters of A-Z a-z 0-9 _ . -");
            if (item.ProducerGroup is not null && item.ProducerGroup != dto.ProducerGroup)
            {
                itemErrors.Add("producerGroup", $"a transaction has one producer group: omit it or use '{dto.ProducerGroup}'");
            }
            messages[i] = ProducerApi.Message(item.Topic ?? "", item.Tag, item.Keys, item.Properties, item.Body, item.DelaySeconds, item.DeliverAt,
                http.Request, itemErrors, time) with { OrderingKey = itemErrors.OrderingKey(item.OrderingKey) };
            errors.AddAll($"messages[{i}].", itemErrors);
        }
        if (errors.Any) return errors.ToProblem();
        if (Refused(http.Caller(), quotas, dto.ProducerGroup!, messages) is { } refused) return refused;

        var transactionId = dto.TransactionId ?? Guid.CreateVersion7().ToString("N");
        var input = new NewTransaction(dto.ProducerGroup!, transactionId, messages, immunity is { } seconds ? TimeSpan.FromSeconds(seconds) : null);
        var result = await writer.Submit(new SendTransaction(input), ct);
        foreach (var topic in messages.Select(m => m.Topic).Distinct(StringComparer.Ordinal)) quotas.TopicUsed(topic);
        var body = new SendTransactionResponse(result.TransactionId, StateNames.Of(result.State),
            result.Messages.Select(m => new TransactionMessageRef(m.Id.ToString(), m.Topic)).ToList());
        return result.Status switch
        {
            SendStatus.Created => TypedResults.Json(body, BrokerJsonContext.Default.SendTransactionResponse, statusCode: 201),
            SendStatus.Replayed => TypedResults.Json(body, BrokerJsonContext.Default.SendTransactionResponse),
            // As the single half message: nothing about the other transaction, it may be another producer's.
            _ => Problems.Conflict("transaction-conflict",
                $"transactionId '{transactionId}' is already used by a transaction with a different producer group or messages (topics, bodies, count); transaction ids are unique across the broker, so choose another."),
        };
    }

    /// <summary>As the single half message: the producer group and every topic must be in the key's scopes, and under the topic quota.</summary>
    private static IResult? Refused(Caller caller, Quotas quotas, string producerGroup, NewMessage[] messages)
    {
        if (!caller.MayUseProducerGroup(producerGroup))
        {
            return Problems.Forbidden(caller, $"transactions of producer group '{producerGroup}' need a producer key whose producerGroups include it");
        }
        for (var i = 0; i < messages.Length; i++)
        {
            if (!caller.MayProduceTo(messages[i].Topic))
            {
                return Problems.Forbidden(caller,
                    $"messages[{i}] sends to topic '{messages[i].Topic}', which needs a producer key whose topics include it; nothing of the transaction was stored");
            }
        }
        for (var i = 0; i < messages.Length; i++)
        {
            if (quotas.TopicRefused(messages[i].Topic) is { } refused)
            {
                return Problems.QuotaExceeded($"messages[{i}] (topic '{messages[i].Topic}'): {refused} Nothing of the transaction was stored.");
            }
        }
        return null;
    }

    /// <summary>A multi-message transaction's view lists its messages (each read by id); any other view is returned as it is.</summary>
    public static TransactionView WithMessages(TransactionView view, StoredMessage first, IMessageLog store)
    {
        if (first.Members.Length == 0) return view;
        var messages = new List<TransactionMessageView>(first.Members.Length + 1) { new(first.Id.ToString(), first.Topic, StateNames.Of(first.State)) };
        foreach (var id in first.Members)
        {
            if (store.Find(id) is { } m) messages.Add(new(m.Id.ToString(), m.Topic, StateNames.Of(m.State)));
        }
        return view with { Messages = messages };
    }
}
