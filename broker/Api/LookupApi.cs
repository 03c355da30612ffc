using HalfMsgBroker.Access;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Api;

/// <summary>Looking messages and topics up: what happened to a message, per consumer group.</summary>
internal static class LookupApi
{
    public static void MapLookupApi(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").WithTags("Lookup");
        v1.MapGet("/messages/{messageId}", GetMessage).RequireAuthorization(Policies.ReadMessages)
            .Produces<MessageView>().ProducesProblem(400).ProducesProblem(404);
        v1.MapGet("/messages", FindMessages).RequireAuthorization(Policies.ReadMessages)
            .Produces<MessageList>().ProducesProblem(400);
        v1.MapGet("/topics", (IStoreMonitoring store) => TypedResults.Json(
            new TopicList(store.TopicCounts().Select(t => new TopicView(t.Topic, t.MessageCount)).ToList()),
            BrokerJsonContext.Default.TopicList)).RequireAuthorization(Policies.Admin).Produces<TopicList>();
    }

    private static IResult GetMessage(string messageId, HttpContext http, IMessageLog store, SubscriptionLookup subscriptions, IDeliveryFigures live)
    {
        if (!Guid.TryParse(messageId, out var id)) return Problems.InvalidField("messageId", "must be a messageId as returned by a send");
        var caller = http.Caller();
        var m = store.Find(id);
        // A message the key may not read is "not found": the answer must not tell that it exists.
        return m is null || !MayRead(caller, m.Topic, subscriptions)
            ? Problems.NotFound("message-not-found", $"No message {messageId} (it may have been purged after its retention).")
            : TypedResults.Json(ToView(m, caller, live), BrokerJsonContext.Default.MessageView);
    }

    /// <summary>Producers read messages on their topics; consumers those on topics their groups subscribe to.</summary>
    private static bool MayRead(Caller caller, string topic, SubscriptionLookup subscriptions) =>
        caller.IsAdmin
        || (caller.Role == Role.Producer && caller.MayProduceTo(topic))
        || (caller.Role == Role.Consumer && subscriptions.AnySubscriptionOf(topic, s => caller.MayUseConsumerGroup(s.Group)));

    private static IResult FindMessages(
        HttpContext http, IStoreMonitoring store, SubscriptionLookup subscriptions, IDeliveryFigures live, string? key = null, string? topic = null, int? limit = null, string? after = null)
    {
        var errors = new FieldErrors();
        if (string.IsNullOrEmpty(key) || key.Length > Names.MaxKeyLength || key.Any(char.IsControl))
        {
            errors.Add("key", $"is required (1-{Names.MaxKeyLength} characters without control characters)");
        }
        if (topic is not null && !Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        var take = errors.Range("limit", limit, 1, 1000, 100)!.Value;
        var cursor = errors.Cursor(after);
        if (errors.Any) return errors.ToProblem();

        var caller = http.Caller();
        var page = store.FindByKey(key!, topic, cursor, take);
        // Filtered after the page is read: a page may hold fewer than limit, and next still leads on.
        // Once per topic: a refusal may cost a store read (many brokers), and a page may hold many messages of one topic.
        var mayRead = new Dictionary<string, bool>(StringComparer.Ordinal);
        var readable = page.Items
            .Where(m => mayRead.TryGetValue(m.Topic, out var may) ? may : mayRead[m.Topic] = MayRead(caller, m.Topic, subscriptions))
            .Select(m => ToView(m, caller, live)).ToList();
        return TypedResults.Json(new MessageList(readable, page.Next?.ToString()), BrokerJsonContext.Default.MessageList);
    }

    /// <summary>
    /// Stored state, overlaid with what only the live deliveries know: which are in flight right now.
    /// A consumer key sees its own groups' deliveries only.
    /// </summary>
    private static MessageView ToView(StoredMessage m, Caller caller, IDeliveryFigures live) => new(
        m.Id.ToString(), m.Topic, m.Tag, m.Keys, m.Properties, new RawJson(m.Body), StateNames.Of(m.State),
        m.TransactionId ?? m.InTransaction, m.ProducerGroup, Times.ToUtc(m.BornAt), Times.ToUtcOrNull(m.DeliverAt),
        m.Deliveries.Where(d => caller.Role != Role.Consumer || caller.MayUseConsumerGroup(d.Group)).Select(d =>
        {
            var state = d.State;
            var attempts = d.Attempts;
            var next = d.NextAttemptAt;
            if (!state.IsTerminal() && live.Find(d.Group, m.Topic, m.Id) is { } current)
            {
                attempts = Math.Max(attempts, current.Attempts);
                (state, next) = (current.State, current.NextAttemptAt);
            }
            return new DeliveryView(d.Group, StateNames.Of(state), attempts, d.LastError, Times.ToUtcOrNull(next),
                state == DeliveryState.DeadLettered ? Times.ToUtcOrNull(d.DeadLetteredAt) : null);
        }).ToList(),
        Times.ToUtcOrNull(m.ResolvedAt),
        m.TransactionId is null ? null : new ResolutionView(
            StateNames.Of(m.ResolvedBy), Times.ToUtcOrNull(m.ResolvedAt), m.CheckCount, Times.ToUtcOrNull(m.LastCheckAt), m.LastCheckResult,
            m.State == MessageState.Prepared ? Times.ToUtcOrNull(m.NextCheckAt) : null, m.UnreachableCount, m.UnknownCount),
        m.OrderingKey);
}
