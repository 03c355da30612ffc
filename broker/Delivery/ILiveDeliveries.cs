using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Delivery;

/// <summary>
/// The engine's side of live deliveries: what the writer does once a batch is stored, what retry-now and a
/// subscription's deletion need to know, and the rebuild at start. In this process's queues
/// (<see cref="InMemoryLiveDeliveries"/>) each stored change is mirrored in memory; where deliveries are rows
/// written in the batch itself (<c>PostgreSqlLiveDeliveries</c>) the after-commit calls have nothing left to do.
/// </summary>
internal interface ILiveDeliveries
{
    /// <summary>After commit: a stored delivery (new, redriven, replayed) becomes live, ready now or at <paramref name="dueAt"/>.</summary>
    void Enqueue(string group, string topic, Guid messageId, int attempts, long dueAt, MessagePayload? payload, string? orderingKey, long commitSeq);

    /// <summary>After commit: a stored retry-now makes a delivery waiting for its backoff ready at once.</summary>
    void BringForward(string group, string topic, Guid messageId);

    /// <summary>The subscription's deliveries waiting for a retry backoff (not those waiting for a delay).</summary>
    IReadOnlyList<Guid> RetryingIds(string group, string topic);

    /// <summary>After a subscription's deletion is stored: removes it from this node and returns the deliveries it still held, to drop.</summary>
    IReadOnlyList<Guid> Remove(string group, string topic);

    /// <summary>
    /// At start, once the subscriptions are in the registry: makes every stored delivery live. Deliveries of a
    /// subscription that no longer exists are added to <paramref name="orphans"/> (by group) to be dropped.
    /// </summary>
    /// <returns>How many deliveries were restored.</returns>
    int Recover(IDueTimes due, Dictionary<string, List<Guid>> orphans);
}
