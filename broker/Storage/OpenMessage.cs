namespace HalfMsgBroker.Storage;

/// <summary>
/// What recovery needs of a committed message with deliveries still to make: its id, topic, due time
/// and deliveries, never its body. A delivery's body is read from the store when it is handed out. A keyed
/// message also brings its ordering key and place in commit order, so each key's order is restored.
/// </summary>
public sealed record OpenMessage(Guid Id, string Topic, long DeliverAt, IReadOnlyList<StoredDelivery> Deliveries, string? OrderingKey = null, long CommitSeq = 0);
