using HalfMsgBroker.Engine;

namespace HalfMsgBroker.Delivery;

/// <summary>
/// Writes the outcome of failed attempts through the single writer and waits for it: concurrent
/// failures land in the same group commit as everything else the writer holds.
/// </summary>
internal sealed class DeliveryRecorder(StoreWriter writer, ILogger<DeliveryRecorder> logger) : IDeliveryRecorder
{
    public async Task RecordAsync(Guid messageId, string group, FailureOutcome outcome)
    {
        StoreCommand<bool> command = outcome.Exhausted
            ? new ExhaustDelivery(messageId, group, outcome.Attempts, outcome.Error, outcome.Action)
            : new RecordAttemptFailure(messageId, group, outcome.Attempts, outcome.Error, outcome.NextAttemptAt);
        try
        {
            await writer.Submit(command, CancellationToken.None);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Storing a failed attempt of message {MessageId} for {Group} failed; the delivery stays as stored", messageId, group);
            throw;
        }
    }
}
