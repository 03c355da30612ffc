using HalfMsgBroker.Engine;

namespace HalfMsgBroker.Delivery;

/// <summary>Writes the outcome of failed attempts through the single writer, without blocking the caller.</summary>
internal sealed class DeliveryRecorder(StoreWriter writer) : IDeliveryRecorder
{
    public void AttemptFailed(DeliveryEntry entry, int attempts, string error, long nextAttemptAt) =>
        writer.Post(new RecordAttemptFailure(entry.MessageId, entry.Queue.Group, attempts, error, nextAttemptAt));

    public void Exhausted(DeliveryEntry entry, int attempts, string error) =>
        writer.Post(new ExhaustDelivery(entry.MessageId, entry.Queue.Group, attempts, error, entry.Queue.Subscription.OnExhausted));
}
