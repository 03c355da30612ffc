namespace HalfMsgBroker.Storage;

/// <summary>
/// What recovery needs of a committed message with deliveries still to make: its id, topic, due time
/// and deliveries, never its body. A delivery's body is read from the store when it is handed out.
/// </summary>
public sealed record OpenMessage(Guid Id, string Topic, long DeliverAt, IReadOnlyList<StoredDelivery> Deliveries);
