using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using Npgsql;

namespace HalfMsgBroker.Delivery.PostgreSql;

/// <summary>
/// <see cref="ILiveDeliveries"/> and <see cref="IDeliveryFigures"/> over <c>halfmsg_deliveries</c>. The writer's batch
/// already wrote the rows (<see cref="DeliveryRowWrites"/>) and notified the brokers, so the after-commit calls do
/// nothing; counts and states are read from the rows, so every broker reports the cluster's figures.
/// </summary>
internal sealed class PostgreSqlLiveDeliveries(
    DeliveryRegistry registry, DeliveryRows rows, NpgsqlDataSource dataSource, TimeProvider time, ILogger<PostgreSqlLiveDeliveries> logger)
    : ILiveDeliveries, IDeliveryFigures
{
    public void Enqueue(string group, string topic, Guid messageId, int attempts, long dueAt, MessagePayload? payload, string? orderingKey, long commitSeq)
    {
        // The row was written with the message, and its notification woke the waiters.
    }

    public void BringForward(string group, string topic, Guid messageId)
    {
        // The row was reset to due-now with the message.
    }

    public IReadOnlyList<Guid> RetryingIds(string group, string topic) => rows.RetryingIds(group, topic, Now);

    public IReadOnlyList<Guid> Remove(string group, string topic)
    {
        registry.Remove(group, topic);
        return rows.Ids(group, topic);
    }

    public int Recover(IDueTimes due, Dictionary<string, List<Guid>> orphans)
    {
        var made = DeliveryRows.Backfill(dataSource, due, Now);
        if (made > 0) logger.LogInformation("Made {Count} delivery rows from the open messages (the database's deliveries were not kept as rows before)", made);
        foreach (var (group, topic) in rows.Subscriptions())
        {
            // The registry holds the subscriptions read when recovery began. One created since on another broker, which
            // fanned out to it already, is missing there, yet its rows are no orphans: only the database says, read
            // after the rows (a row exists only once its subscription was committed).
            if (registry.Find(group, topic) is not null || SubscriptionExists(group, topic)) continue;
            (orphans.TryGetValue(group, out var ids) ? ids : orphans[group] = []).AddRange(rows.Ids(group, topic));
        }
        return made;
    }

    private bool SubscriptionExists(string group, string topic) => PostgreSqlErrors.Read(dataSource, c =>
    {
        using var command = new NpgsqlCommand("SELECT 1 FROM halfmsg_subscriptions WHERE id = $1", c);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = LiteDbMessageStore.SubscriptionId(group, topic) });
        return command.ExecuteScalar() is not null;
    });

    public QueueCounts Counts(string group, string topic)
    {
        var (ready, inFlight, waiting) = rows.Counts(group, topic, Now);
        return new QueueCounts(ready, inFlight, waiting);
    }

    public LiveDelivery? Find(string group, string topic, Guid messageId)
    {
        if (rows.Find(group, messageId) is not var (nonce, attempts, visibleAt)) return null;
        if (visibleAt <= Now) return new LiveDelivery(DeliveryState.Pending, attempts, 0);
        if (nonce != 0) return new LiveDelivery(DeliveryState.InFlight, attempts, 0);
        return new LiveDelivery(attempts > 0 ? DeliveryState.Retrying : DeliveryState.Pending, attempts, visibleAt);
    }

    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();
}
