using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;

namespace HalfMsgBroker.Delivery.PostgreSql;

/// <summary>A claimed row with its message, ready to hand out.</summary>
internal readonly record struct ClaimedDelivery(ClaimedRow Row, MessagePayload Payload);

/// <summary>
/// Claims due rows of a subscription for pull and push alike (<see cref="DeliveryRows.ClaimAsync"/>, the messages in the
/// same round trip), then does what a claim finds besides: a row past its subscription's maxAttempts (its last attempt's lease ran out) is dead-lettered
/// or discarded through the writer instead of handed out; a row whose message is gone (purged) is removed.
/// </summary>
internal sealed class DeliveryClaims(DeliveryRows rows, StoreWriter writer, DeliveryWakeups wakeups, ILogger<DeliveryClaims> logger)
{
    public async Task<List<ClaimedDelivery>> ClaimAsync(Subscription subscription, int max, long now, long leaseEnd)
    {
        var claimed = await rows.ClaimAsync(subscription.Group, subscription.Topic, max, now, leaseEnd, subscription.MaxAttempts);
        if (claimed.Count == 0) return [];
        // This node hears of its own leases' ends without a notification: its timer moves forward to the end.
        wakeups.DueAt(leaseEnd);

        var handed = new List<ClaimedDelivery>(claimed.Count);
        foreach (var (row, data) in claimed)
        {
            if (row.Attempts <= subscription.MaxAttempts)
            {
                if (data is not null) handed.Add(new ClaimedDelivery(row, MessagePayload.From(MessageBinary.Read(data))));
                else
                {
                    logger.LogWarning("A claimed delivery of message {MessageId} to {Group} has no message (purged meanwhile); its row is removed", row.MessageId, subscription.Group);
                    await rows.ForgetAsync(subscription.Group, row.MessageId);
                }
                continue;
            }
            var last = subscription.MaxAttempts;
            try
            {
                await writer.Submit(new ExhaustDelivery(row.MessageId, subscription.Group, last,
                    $"not acked before its visibility timeout (attempt {last} of {last})", subscription.OnExhausted));
            }
            catch (Exception e)
            {
                // Still leased to this claim: it comes up again when the lease runs out.
                logger.LogWarning(e, "Storing the exhausted delivery of message {MessageId} to {Group} failed", row.MessageId, subscription.Group);
            }
        }
        return handed;
    }
}
