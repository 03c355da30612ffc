using HalfMsgBroker.Configuration;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Delivery;

/// <summary>
/// <see cref="IPullDeliveries"/> over this process's queues (<see cref="DeliveryRegistry"/>): leases, nonces and
/// visibility timers in memory, every settlement stored through the writer. A receipt handle names a message,
/// not a topic, so a settlement asks each of the group's queues in turn; the one holding the lease answers.
/// </summary>
internal sealed class InMemoryPullDeliveries(
    DeliveryRegistry registry, IMessageLog store, StoreWriter writer, IOptions<BrokerOptions> options, TimeProvider time) : IPullDeliveries
{
    public async Task<IReadOnlyList<PulledDelivery>> ReceiveAsync(
        string group, string topic, int max, TimeSpan wait, TimeSpan invisible, CancellationToken cancellationToken)
    {
        if (registry.Find(group, topic) is not { } queue) return [];
        var leases = await TakeAsync(queue, max, wait, (long)invisible.TotalMilliseconds, cancellationToken);
        var pulled = new List<PulledDelivery>(leases.Count);
        foreach (var lease in leases)
        {
            var payload = lease.Entry.Payload ?? (store.Find(lease.Entry.MessageId) is { } m ? MessagePayload.From(m) : null);
            if (payload is null)
            {
                queue.Ack(lease.Entry.MessageId, lease.Nonce, out _); // purged meanwhile: nothing to hand out
                continue;
            }
            pulled.Add(new PulledDelivery(payload, lease.Nonce, lease.Attempt, lease.Entry.Order?.Key));
        }
        return pulled;
    }

    /// <summary>
    /// Takes what is ready, or waits for the first message. With <c>ReceiveLinger</c> set, a receive that had to
    /// wait lingers that long for more, so a consumer woken by one commit may go home with a batch.
    /// </summary>
    private async Task<List<Lease>> TakeAsync(SubscriptionQueue queue, int max, TimeSpan wait, long invisibleMs, CancellationToken ct)
    {
        var leases = new List<Lease>(max);
        var linger = options.Value.Delivery.ReceiveLinger;
        var deadline = time.GetTimestamp() + (long)(wait.TotalSeconds * time.TimestampFrequency);
        var waited = false;
        try
        {
            while (true)
            {
                queue.Take(max, time.GetUtcNow().ToUnixTimeMilliseconds() + invisibleMs, leases);
                var remaining = time.GetElapsedTime(time.GetTimestamp(), deadline);
                if (leases.Count > 0 || remaining <= TimeSpan.Zero || ct.IsCancellationRequested || queue.IsClosed) break;
                await queue.WaitForReadyAsync(remaining, time, ct);
                waited = true;
            }
            if (waited && leases.Count > 0 && leases.Count < max && linger > TimeSpan.Zero)
            {
                await Task.Delay(linger, time, ct);
                queue.Take(max, time.GetUtcNow().ToUnixTimeMilliseconds() + invisibleMs, leases);
            }
        }
        catch (OperationCanceledException)
        {
            // The consumer went away; whatever it was handed becomes visible again after its invisibility.
        }
        return leases;
    }

    public async Task<AckOutcome> AckAsync(string group, IReadOnlyList<(Guid MessageId, ulong Nonce)> leases)
    {
        var queues = registry.QueuesOf(group).ToList();
        var acks = new List<AckItem>(leases.Count);
        var settled = new List<(SubscriptionQueue Queue, OrderSlot? Order)>(leases.Count);
        var stale = new List<int>();
        for (var i = 0; i < leases.Count; i++)
        {
            var (messageId, nonce) = leases[i];
            var attempts = 0;
            OrderSlot? order = null;
            if (Settle(queues, q => q.Ack(messageId, nonce, out attempts, out order)) is { } queue)
            {
                acks.Add(new AckItem(messageId, group, attempts));
                settled.Add((queue, order));
            }
            else
            {
                stale.Add(i);
            }
        }

        if (acks.Count > 0)
        {
            try
            {
                await writer.Submit(new AckDeliveries(acks), CancellationToken.None);
            }
            catch
            {
                // Memory took the acks first (a second ack of a handle is stale at once); the store refused them, so they go back.
                var now = time.GetUtcNow().ToUnixTimeMilliseconds();
                for (var i = 0; i < acks.Count; i++) settled[i].Queue.Restore(acks[i].MessageId, acks[i].Attempts, now, settled[i].Order);
                throw;
            }
        }
        return new AckOutcome(acks.Count, stale);
    }

    public async Task<NackStored?> NackAsync(string group, Guid messageId, ulong nonce, long retryAt, long now)
    {
        var pending = default(PendingFailure);
        var queue = Settle(registry.QueuesOf(group), q =>
            q.BeginNack(messageId, nonce, retryAt, options.Value.Delivery.BackoffFor(q.Peek(messageId)?.Attempts ?? 1), now, out pending));
        if (queue is null) return null;

        // Memory moves on only once the store holds the failure; a store failure leaves the lease held and is thrown.
        if (await queue.CompleteFailureAsync(pending) is not { } stored) return null; // its subscription was deleted meanwhile
        return new NackStored(stored, stored == Lifecycle.DeliveryState.Retrying ? pending.Outcome.NextAttemptAt : 0);
    }

    public bool ChangeInvisibility(string group, Guid messageId, ulong nonce, long visibleAt) =>
        Settle(registry.QueuesOf(group), queue => queue.ChangeInvisibility(messageId, nonce, visibleAt)) is not null;

    /// <summary>The one queue of the group that holds the lease settles it; null when none did (the lease is stale).</summary>
    private static SubscriptionQueue? Settle(IEnumerable<SubscriptionQueue> queues, Func<SubscriptionQueue, SettleOutcome> settle)
    {
        foreach (var queue in queues)
        {
            if (settle(queue) == SettleOutcome.Done) return queue;
        }
        return null;
    }
}
