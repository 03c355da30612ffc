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
        v1.MapGet("/messages/{messageId}", GetMessage).Produces<MessageView>().ProducesProblem(400).ProducesProblem(404);
        v1.MapGet("/messages", FindMessages).Produces<MessageList>().ProducesProblem(400);
        v1.MapGet("/topics", (IMessageStore store) => TypedResults.Json(
            new TopicList(store.TopicCounts().Select(t => new TopicView(t.Topic, t.MessageCount)).ToList()),
            BrokerJsonContext.Default.TopicList)).Produces<TopicList>();
    }

    private static IResult GetMessage(string messageId, IMessageStore store, DeliveryRegistry registry)
    {
        if (!Guid.TryParse(messageId, out var id)) return Problems.InvalidField("messageId", "must be a messageId as returned by a send");
        var m = store.Find(id);
        return m is null
            ? Problems.NotFound("message-not-found", $"No message {messageId} (it may have been purged after its retention).")
            : TypedResults.Json(ToView(m, registry), BrokerJsonContext.Default.MessageView);
    }

    private static IResult FindMessages(
        IMessageStore store, DeliveryRegistry registry, string? key = null, string? topic = null, int? limit = null, string? after = null)
    {
        var errors = new FieldErrors();
        if (string.IsNullOrEmpty(key) || key.Length > Names.MaxKeyLength) errors.Add("key", $"is required (1-{Names.MaxKeyLength} characters)");
        if (topic is not null && !Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        var take = errors.Range("limit", limit, 1, 1000, 100)!.Value;
        var cursor = errors.Cursor(after);
        if (errors.Any) return errors.ToProblem();

        var page = store.FindByKey(key!, topic, cursor, take);
        return TypedResults.Json(new MessageList(page.Items.Select(m => ToView(m, registry)).ToList(), page.Next?.ToString()), BrokerJsonContext.Default.MessageList);
    }

    /// <summary>Stored state, overlaid with what only memory knows: which deliveries are in flight right now.</summary>
    private static MessageView ToView(StoredMessage m, DeliveryRegistry registry) => new(
        m.Id.ToString(), m.Topic, m.Tag, m.Keys, m.Properties, new RawJson(m.Body), StateNames.Of(m.State),
        m.TransactionId, m.ProducerGroup, Times.ToUtc(m.BornAt), Times.ToUtcOrNull(m.DeliverAt),
        m.Deliveries.Select(d =>
        {
            var state = d.State;
            var attempts = d.Attempts;
            var next = d.NextAttemptAt;
            if (!state.IsTerminal() && registry.Find(d.Group, m.Topic)?.Peek(m.Id) is { } live)
            {
                attempts = Math.Max(attempts, live.Attempts);
                (state, next) = live.Phase switch
                {
                    EntryPhase.InFlight => (DeliveryState.InFlight, 0L),
                    EntryPhase.Waiting when live.Attempts > 0 => (DeliveryState.Retrying, live.DueAt),
                    EntryPhase.Waiting => (DeliveryState.Pending, live.DueAt),
                    _ => (DeliveryState.Pending, 0L),
                };
            }
            return new DeliveryView(d.Group, StateNames.Of(state), attempts, d.LastError, Times.ToUtcOrNull(next));
        }).ToList());
}
