using HalfMsgBroker.Engine;
using LiteDB;
using Npgsql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// Many active brokers: a subscription created (or deleted) on one broker must count for every message committed after
/// it, on every broker, not only once the others heard its notification. So a batch that fans out reads the topic's
/// subscriptions from <c>halfmsg_subscriptions</c> in its own transaction, after taking the topic's advisory lock shared
/// (<c>pg_advisory_xact_lock_shared</c>); a batch that saves or deletes a subscription takes it exclusively first. The
/// two serialize: a commit that read the topic before the change committed itself before the change did (the change
/// waited for it), and one that read after sees it. Once per topic per batch: one round trip, and the lock, held to the
/// end of the transaction, keeps the reading true for the whole batch. A change reads the subscription it changes the same
/// way, under the exclusive lock (<see cref="ISharedSubscriptions.TryReadForChange"/>): it merges with what is stored, not
/// with this broker's memory, which may not have heard of another broker's change yet.
/// </summary>
public sealed partial class PostgreSqlMessageStore : ISharedSubscriptions
{
    /// <summary>The first key of the per-topic advisory locks ("hms1"); the second is <c>hashtext(topic)</c> (a collision only serializes more).</summary>
    internal const int TopicLockSpace = 0x686d7331;

    private readonly Dictionary<string, IReadOnlyList<Subscription>> _fanOutSubscriptions = new(StringComparer.Ordinal);

    IReadOnlyList<Subscription>? ISharedSubscriptions.SubscriptionsForFanOut(string topic)
    {
        if (_multiActive is null || !InBatch) return null;
        if (_fanOutSubscriptions.TryGetValue(topic, out var read)) return read;
        read = Lookup(c => ReadSubscriptionsOf(c, topic));
        _fanOutSubscriptions[topic] = read;
        return read;
    }

    bool ISharedSubscriptions.TryReadForChange(string group, string topic, out Subscription? stored)
    {
        stored = null;
        if (_multiActive is null || !InBatch) return false;
        var id = LiteDbMessageStore.SubscriptionId(group, topic);
        if (_pending.TryGetSubscription(id, out var pending))
        {
            stored = pending is null ? null : LiteDbMessageStore.SubscriptionFrom(pending);
            return true;
        }
        // The lock first, then the read in a statement of its own: its snapshot sees the change that held the lock last.
        LockSubscriptionsOf(topic);
        stored = Lookup(c =>
        {
            using var command = new NpgsqlCommand("SELECT doc FROM halfmsg_subscriptions WHERE id = $1", c);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
            return command.ExecuteScalar() is byte[] bson ? LiteDbMessageStore.SubscriptionFrom(BsonSerializer.Deserialize(bson)) : null;
        });
        return true;
    }

    /// <summary>A subscription of <paramref name="topic"/> is about to be saved or deleted: no batch is mid-fan-out on the topic, and none starts until this one ends.</summary>
    private void LockSubscriptionsOf(string topic)
    {
        if (_multiActive is null) return;
        Lookup(c =>
        {
            using var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock($1, hashtext($2))", c);
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = TopicLockSpace });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = topic });
            return command.ExecuteNonQuery();
        });
    }

    private void ForgetFanOutSubscriptions() => _fanOutSubscriptions.Clear();

    private static List<Subscription> ReadSubscriptionsOf(NpgsqlConnection connection, string topic)
    {
        // Two statements, two snapshots: the read sees whatever a change committed while this waited for the lock.
        using var batch = new NpgsqlBatch(connection);
        var lockCommand = new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock_shared($1, hashtext($2))");
        lockCommand.Parameters.Add(new NpgsqlParameter<int> { TypedValue = TopicLockSpace });
        lockCommand.Parameters.Add(new NpgsqlParameter<string> { TypedValue = topic });
        batch.BatchCommands.Add(lockCommand);
        // The id is "group \n topic"; subscriptions are few, so a scan of the table costs less than an index of its own.
        var read = new NpgsqlBatchCommand("SELECT doc FROM halfmsg_subscriptions WHERE right(id, length($1) + 1) = E'\\n' || $1");
        read.Parameters.Add(new NpgsqlParameter<string> { TypedValue = topic });
        batch.BatchCommands.Add(read);
        using var reader = batch.ExecuteReader();
        reader.NextResult();
        var subscriptions = new List<Subscription>();
        while (reader.Read())
        {
            var subscription = LiteDbMessageStore.SubscriptionFrom(BsonSerializer.Deserialize((byte[])reader[0]));
            if (string.Equals(subscription.Topic, topic, StringComparison.Ordinal)) subscriptions.Add(subscription);
        }
        return subscriptions;
    }
}
