using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;

namespace HalfMsgBroker.Delivery.PostgreSql;

/// <summary>
/// Stores the leases that ran out, as this process's queues do at a visibility time-out: a failed attempt
/// ("not acked before its visibility timeout"), visible again at once, or past maxAttempts the dead letter or discard.
/// Any broker may do it for any lease (a dead broker's too): each expired lease is taken by one (<see cref="DeliveryRows.TakeExpiredAsync"/>).
/// Run by <see cref="DeliveryWakeups"/> when its timer fires and at each safety poll. A page's time-outs are handed to the
/// writer all at once, so they share its group commits instead of paying one each; each is still answered on its own.
/// </summary>
internal sealed class LeaseExpiry(DeliveryRows rows, SubscriptionLookup subscriptions, StoreWriter writer, TimeProvider time, ILogger<LeaseExpiry> logger)
{
    private const int Page = 256;

    /// <summary>How long a time-out being stored holds its row, and how soon one the store refused is tried again.</summary>
    private const long HoldMs = 1000;

    public async Task RunAsync()
    {
        while (true)
        {
            var now = time.GetUtcNow().ToUnixTimeMilliseconds();
            var expired = await rows.TakeExpiredAsync(now, now + 30_000, Page);
            var stored = new List<(Guid Id, string Group, Task<bool> Stored)>(expired.Count);
            // Once per subscription and page: one this broker has not heard of costs a store read (a deleted one, each time).
            var found = new Dictionary<(string, string), Subscription?>();
            foreach (var (id, group, topic, attempts) in expired)
            {
                if (!found.TryGetValue((group, topic), out var subscription)) found[(group, topic)] = subscription = subscriptions.Find(group, topic)?.Subscription;
                if (subscription is null) continue; // deleted: its rows are being dropped
                const string error = "not acked before its visibility timeout";
                stored.Add((id, group, writer.Submit<bool>(attempts >= subscription.MaxAttempts
                    ? new ExhaustDelivery(id, group, attempts, $"{error} (attempt {attempts} of {subscription.MaxAttempts})", subscription.OnExhausted)
                    : new RecordAttemptFailure(id, group, attempts, error, 0), CancellationToken.None)));
            }
            foreach (var (id, group, task) in stored)
            {
                try
                {
                    await task;
                }
                catch (Exception e)
                {
                    logger.LogWarning("Storing the visibility time-out of message {MessageId} for {Group} failed ({Error}); tried again in a second", id, group, e.Message);
                    await rows.HoldAsync(group, id, now + HoldMs);
                }
            }
            if (expired.Count < Page) return;
        }
    }
}
