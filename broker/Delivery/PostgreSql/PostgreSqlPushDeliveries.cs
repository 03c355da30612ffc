using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage.PostgreSql;

namespace HalfMsgBroker.Delivery.PostgreSql;

/// <summary>
/// <see cref="IPushDeliveries"/> over <c>halfmsg_deliveries</c>: every broker runs a dispatch loop for each push
/// subscription, and each POST is made under a lease claimed from the shared rows (the push timeout plus
/// <see cref="LeaseMarginMs"/>), so a delivery is pushed by one broker at a time.
/// </summary>
internal sealed class PostgreSqlPushDeliveries(DeliveryRows rows, DeliveryClaims claims, StoreWriter writer, TimeProvider time) : IPushDeliveries
{
    /// <summary>How much longer than the push timeout a push lease holds: the POST's own time-out ends it well before.</summary>
    private const long LeaseMarginMs = 30_000;

    public async Task<PushLease?> TakeAsync(SubscriptionQueue queue)
    {
        var subscription = queue.Subscription;
        queue.ClearNudge();
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var claimed = await claims.ClaimAsync(subscription, 1, now, now + (subscription.Push?.TimeoutMs ?? 0) + LeaseMarginMs);
        if (claimed.Count == 0) return null;
        // There may be more: the loop looks again once it has a slot, until a claim comes back empty.
        queue.Nudge();
        var (row, payload) = claimed[0];
        return new PushLease(row.MessageId, row.Nonce, row.Attempts, row.OrderingKey, payload, null);
    }

    public async Task AckAsync(SubscriptionQueue queue, PushLease lease)
    {
        try
        {
            await writer.Submit(new AckDeliveries([new AckItem(lease.MessageId, queue.Group, lease.Attempt)]), CancellationToken.None);
        }
        catch
        {
            // Not stored: the delivery comes back a second later rather than in a tight loop against a failing store.
            await rows.ReleaseAsync(queue.Group, lease.MessageId, time.GetUtcNow().ToUnixTimeMilliseconds() + 1000);
            throw;
        }
    }

    public async Task FailedAsync(SubscriptionQueue queue, PushLease lease, string error, TimeSpan backoff, long now)
    {
        var subscription = queue.Subscription;
        var next = now + (long)backoff.TotalMilliseconds;
        // Settled like a nack: the lease is given up first (the row's reset waits for an unleased row), and a lease
        // that already ran out, and may be another broker's now, records nothing.
        if ((await rows.BeginSettleAsync(queue.Group, [(lease.MessageId, lease.Nonce)], now)).Count == 0) return;
        try
        {
            if (lease.Attempt >= subscription.MaxAttempts)
            {
                await writer.Submit(new ExhaustDelivery(lease.MessageId, queue.Group, lease.Attempt,
                    $"{error} (attempt {lease.Attempt} of {subscription.MaxAttempts})", subscription.OnExhausted), CancellationToken.None);
            }
            else
            {
                await writer.Submit(new RecordAttemptFailure(lease.MessageId, queue.Group, lease.Attempt, error, next), CancellationToken.None);
            }
        }
        catch
        {
            // Not stored, so the attempt does not count: tried again after the backoff (at least a second), under a new lease.
            await rows.ReleaseAsync(queue.Group, lease.MessageId, Math.Max(next, now + 1000), uncount: true);
        }
    }

    public Task GoneAsync(SubscriptionQueue queue, PushLease lease) =>
        lease.Payload is null
            ? rows.ForgetAsync(queue.Group, lease.MessageId)
            : rows.ReleaseAsync(queue.Group, lease.MessageId, time.GetUtcNow().ToUnixTimeMilliseconds()); // no longer push: pull consumers take it
}
