using HalfMsgBroker.Configuration;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Delivery.PostgreSql;

/// <summary>
/// <see cref="IPullDeliveries"/> over <c>halfmsg_deliveries</c>, shared by every broker on the database: a receive
/// claims rows (<see cref="DeliveryClaims"/>) and, when none is due, waits on the subscription's queue for a nudge
/// (<see cref="DeliveryWakeups"/>); a settlement matches the nonce stored in the row, so a lease taken on one broker
/// is settled on any. Outcomes are stored through the writer, which keeps the row in step with the message.
/// </summary>
internal sealed class PostgreSqlPullDeliveries(
    SubscriptionLookup subscriptions, DeliveryRows rows, DeliveryClaims claims, DeliveryWakeups wakeups, StoreWriter writer, IOptions<BrokerOptions> options, TimeProvider time)
    : IPullDeliveries
{
    private long _looks;

    /// <summary>How many claims this broker's receives ran (a test counts the claims that one commit costs).</summary>
    internal long Looks => Interlocked.Read(ref _looks);

    public async Task<IReadOnlyList<PulledDelivery>> ReceiveAsync(
        string group, string topic, int max, TimeSpan wait, TimeSpan invisible, CancellationToken cancellationToken)
    {
        if (subscriptions.Find(group, topic) is not { } queue) return [];
        var deadline = time.GetTimestamp() + (long)(wait.TotalSeconds * time.TimestampFrequency);
        for (var woken = false; ; woken = true)
        {
            try
            {
                await queue.Looks.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return [];
            }
            try
            {
                // A receive looks at least once; woken, it looks only if a nudge came since another look came back short.
                if (!woken || !queue.NothingNewSinceShortLook)
                {
                    var covered = queue.ClearNudge();
                    Interlocked.Increment(ref _looks);
                    var now = time.GetUtcNow().ToUnixTimeMilliseconds();
                    // Not cancelled midway: a claim that committed is handed out, or its lease runs out as any unsettled one.
                    var claimed = await claims.ClaimAsync(queue.Subscription, max, now, now + (long)invisible.TotalMilliseconds);
                    if (claimed.Count < max) queue.LookedShort(covered);
                    if (claimed.Count > 0) return claimed.ConvertAll(c => new PulledDelivery(c.Payload, c.Row.Nonce, c.Row.Attempts, c.Row.OrderingKey));
                }
            }
            finally
            {
                queue.Looks.Release();
            }

            var remaining = time.GetElapsedTime(time.GetTimestamp(), deadline);
            if (remaining <= TimeSpan.Zero || cancellationToken.IsCancellationRequested || queue.IsClosed) return [];
            try
            {
                await queue.WaitForReadyAsync(remaining, time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return [];
            }
        }
    }

    /// <summary>One writer batch, one transaction: the lease check and the ack commit together (<see cref="AckLeases"/>).</summary>
    public Task<AckOutcome> AckAsync(string group, IReadOnlyList<(Guid MessageId, ulong Nonce)> leases) =>
        writer.Submit(new AckLeases(group, leases), CancellationToken.None);

    public async Task<NackStored?> NackAsync(string group, Guid messageId, ulong nonce, long retryAt, long now)
    {
        var settling = await rows.BeginSettleAsync(group, [(messageId, nonce)], now);
        if (settling.Count == 0) return null;
        var held = settling[0];
        if (subscriptions.Find(group, held.Topic)?.Subscription is not { } subscription)
        {
            // Deleted (its rows are being dropped): refused, and like every refused settlement it leaves the lease as it was.
            await rows.RestoreLeaseAsync(group, held);
            return null;
        }

        var due = retryAt > 0 ? retryAt : now + (long)options.Value.Delivery.BackoffFor(held.Attempts).TotalMilliseconds;
        var exhausted = held.Attempts >= subscription.MaxAttempts;
        bool stored;
        try
        {
            stored = exhausted
                ? await writer.Submit(new ExhaustDelivery(messageId, group, held.Attempts,
                    $"nacked by the consumer (attempt {held.Attempts} of {subscription.MaxAttempts})", subscription.OnExhausted), CancellationToken.None)
                : await writer.Submit(new RecordAttemptFailure(messageId, group, held.Attempts, "nacked by the consumer", due > now ? due : 0), CancellationToken.None);
        }
        catch
        {
            // Memory-free, but the same promise: the delivery stays in flight under the same lease.
            await rows.RestoreLeaseAsync(group, held);
            throw;
        }
        if (!stored) return null;
        if (exhausted) return new NackStored(subscription.OnExhausted == ExhaustedAction.Discard ? DeliveryState.Discarded : DeliveryState.DeadLettered, 0);
        return due > now ? new NackStored(DeliveryState.Retrying, due) : new NackStored(DeliveryState.Pending, 0);
    }

    public bool ChangeInvisibility(string group, Guid messageId, ulong nonce, long visibleAt)
    {
        if (!rows.ChangeVisibility(group, messageId, nonce, visibleAt, time.GetUtcNow().ToUnixTimeMilliseconds())) return false;
        wakeups.DueAt(visibleAt); // made visible sooner: this node's waiters look again then
        return true;
    }
}
