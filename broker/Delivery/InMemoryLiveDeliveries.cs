using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Delivery;

/// <summary><see cref="ILiveDeliveries"/> over this process's queues (<see cref="DeliveryRegistry"/>): memory follows each stored change.</summary>
internal sealed class InMemoryLiveDeliveries(DeliveryRegistry registry, TimeProvider time) : ILiveDeliveries
{
    public void Enqueue(string group, string topic, Guid messageId, int attempts, long dueAt, MessagePayload? payload, string? orderingKey, long commitSeq) =>
        registry.Enqueue(group, topic, messageId, attempts, dueAt, payload, orderingKey, commitSeq);

    public void BringForward(string group, string topic, Guid messageId) => registry.Find(group, topic)?.BringForward(messageId);

    public IReadOnlyList<Guid> RetryingIds(string group, string topic) => registry.Find(group, topic)?.RetryingIds() ?? [];

    public IReadOnlyList<Guid> Remove(string group, string topic) => registry.Remove(group, topic);

    /// <summary>
    /// Only what delivery needs is loaded (ids, groups, attempts, due times): a body is read from the store when its
    /// delivery is handed out. Deliveries that were in flight when the broker stopped are simply ready again.
    /// </summary>
    public int Recover(IDueTimes due, Dictionary<string, List<Guid>> orphans)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var restored = 0;
        // The open range is in id (birth) order; a key's deliveries must go back in commit order, so keyed ones are sorted first.
        var keyed = new List<(long Seq, SubscriptionQueue Queue, Guid Id, int Attempts, long Due, string Key)>();
        foreach (var message in due.OpenMessages())
        {
            foreach (var d in message.Deliveries)
            {
                if (d.State.IsTerminal()) continue;
                var queue = registry.Find(d.Group, message.Topic);
                if (queue is null)
                {
                    (orphans.TryGetValue(d.Group, out var ids) ? ids : orphans[d.Group] = []).Add(message.Id);
                    continue;
                }
                var dueAt = Math.Max(d.NextAttemptAt, message.DeliverAt);
                if (message.OrderingKey is { } key) keyed.Add((message.CommitSeq, queue, message.Id, d.Attempts, dueAt, key));
                else queue.Add(message.Id, d.Attempts, dueAt, payload: null, now);
                restored++;
            }
        }
        keyed.Sort((a, b) => a.Seq != b.Seq ? a.Seq.CompareTo(b.Seq) : a.Id.CompareTo(b.Id));
        foreach (var (seq, queue, id, attempts, dueAt, key) in keyed) queue.Add(id, attempts, dueAt, payload: null, now, key, seq);
        return restored;
    }
}
