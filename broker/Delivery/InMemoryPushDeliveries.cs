using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Delivery;

/// <summary><see cref="IPushDeliveries"/> over this process's queues: the entry is leased in memory, every outcome stored through the writer.</summary>
internal sealed class InMemoryPushDeliveries(StoreWriter writer, IMessageLog store, TimeProvider time) : IPushDeliveries
{
    public async Task<PushLease?> TakeAsync(SubscriptionQueue queue)
    {
        var leases = new List<Lease>(1);
        queue.Take(1, null, leases);
        if (leases.Count == 0) return null;
        var (entry, nonce, attempt) = leases[0];
        MessagePayload? payload;
        try
        {
            payload = entry.Payload ?? (store.Find(entry.MessageId) is { } stored ? MessagePayload.From(stored) : null);
        }
        catch
        {
            // The entry is in flight now: a body that cannot be read is a failed attempt (tried again after a
            // second), or the entry would stay in flight, and hold back its ordering key, until a restart.
            await queue.PushFailedAsync(entry, "broker error", TimeSpan.FromSeconds(1), time.GetUtcNow().ToUnixTimeMilliseconds());
            throw;
        }
        return new PushLease(entry.MessageId, nonce, attempt, entry.OrderingKey, payload, entry);
    }

    public async Task AckAsync(SubscriptionQueue queue, PushLease lease)
    {
        var entry = lease.Entry!;
        queue.PushSucceeded(entry);
        try
        {
            await writer.Submit(new AckDeliveries([new AckItem(entry.MessageId, queue.Group, lease.Attempt)]), CancellationToken.None);
        }
        catch
        {
            // The store did not take the ack, so the delivery comes back (at least once), a second
            // later rather than in a tight loop against a failing store.
            var now = time.GetUtcNow().ToUnixTimeMilliseconds();
            queue.Add(entry.MessageId, lease.Attempt, now + 1000, null, now, entry.OrderingKey, entry.CommitSeq);
            throw;
        }
    }

    public Task FailedAsync(SubscriptionQueue queue, PushLease lease, string error, TimeSpan backoff, long now) =>
        queue.PushFailedAsync(lease.Entry!, error, backoff, now);

    public Task GoneAsync(SubscriptionQueue queue, PushLease lease)
    {
        queue.PushSucceeded(lease.Entry!);
        return Task.CompletedTask;
    }
}
