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

    /// <summary>Round trips a fan-out made for a topic its batch's prefetch had not read (tests check there are none).</summary>
    internal long FanOutReads { get; private set; }

    IReadOnlyList<Subscription>? ISharedSubscriptions.SubscriptionsForFanOut(string topic)
    {
        if (_multiActive is null || !InBatch) return null;
        if (_fanOutSubscriptions.TryGetValue(topic, out var read)) return read;
        FanOutReads++;
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

    // The topics a batch fans out to, as far as its prefetch knows them: its sends' topics, and those of the transactions it
    // commits (their rows are locked by the statement before, so the topic read is the one the batch will write over).
    private const string PrefetchTopics = """
        SELECT t FROM unnest($2::text[]) AS t
        UNION SELECT topic FROM halfmsg_messages WHERE unique_key = ANY ($3::text[])
        """;

    /// <summary>
    /// Adds to a batch's prefetch the locks and the subscription read that <see cref="ISharedSubscriptions.SubscriptionsForFanOut"/>
    /// would otherwise make per topic: one round trip less per commit. The locks are taken in topic order, so two batches'
    /// shared locks and a subscription change's exclusive one queue the same way round.
    /// </summary>
    private static void AddFanOutReads(NpgsqlBatch batch, IReadOnlyCollection<string> sendTopics, string[] transactionKeys)
    {
        var locks = new NpgsqlBatchCommand($"SELECT t, pg_advisory_xact_lock_shared($1, hashtext(t)) FROM ({PrefetchTopics} ORDER BY 1) x");
        var read = new NpgsqlBatchCommand($"SELECT doc FROM halfmsg_subscriptions WHERE split_part(id, E'\\n', 2) IN ({PrefetchTopics})");
        foreach (var command in (NpgsqlBatchCommand[])[locks, read])
        {
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = TopicLockSpace });
            command.Parameters.Add(BatchSql.Array(NpgsqlTypes.NpgsqlDbType.Text, sendTopics.ToArray()));
            command.Parameters.Add(BatchSql.Array(NpgsqlTypes.NpgsqlDbType.Text, transactionKeys));
            batch.BatchCommands.Add(command);
        }
    }

    /// <summary>Reads what <see cref="AddFanOutReads"/> asked: every topic locked gets its list, empty when it has no subscription.</summary>
    private void ReadFanOut(NpgsqlDataReader reader)
    {
        var topics = new List<string>();
        while (reader.Read()) topics.Add(reader.GetString(0));
        reader.NextResult();
        var subscriptions = new List<Subscription>();
        while (reader.Read()) subscriptions.Add(LiteDbMessageStore.SubscriptionFrom(BsonSerializer.Deserialize((byte[])reader[0])));
        foreach (var topic in topics)
        {
            _fanOutSubscriptions[topic] = [.. subscriptions.Where(s => string.Equals(s.Topic, topic, StringComparison.Ordinal))];
        }
    }

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
