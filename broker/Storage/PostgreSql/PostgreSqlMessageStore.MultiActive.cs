using System.Globalization;
using HalfMsgBroker.Lifecycle;
using Npgsql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>What a store shared by many active brokers does differently (<c>Broker:Storage:PostgreSql:MultiActive</c>).</summary>
/// <param name="CheckNotifyHorizon">
/// A batch that sets a check due sooner than this from now tells the other brokers (<see cref="CheckDueChannel"/>);
/// later ones they find on their own, since each re-reads the earliest due check at least this often (the check-back
/// loop's <c>IdleScanInterval</c>).
/// </param>
internal sealed record MultiActiveOptions(TimeSpan CheckNotifyHorizon, TimeProvider Time);

/// <summary>
/// Many active brokers on one database. Another broker may change any row between two of this writer's batches, so a
/// batch's first lookup opens a transaction and every lookup reads its row <c>FOR UPDATE</c>: two brokers' transitions
/// of one message serialize on the row, and the second sees the first's result (a commit racing a rollback on another
/// broker gets the state conflict, a check begun by another broker is seen already moved). The batch's writes follow in
/// that transaction; one without lookups keeps the implicit transaction of a single round trip. What it changes that
/// others keep in memory is announced in the same transaction: configuration on <see cref="ConfigChange.Channel"/>, a
/// check due soon on <see cref="CheckDueChannel"/>.
/// </summary>
public sealed partial class PostgreSqlMessageStore
{
    /// <summary>The channel that carries the earliest check due time (Unix ms) a batch set, when it is soon.</summary>
    internal const string CheckDueChannel = "halfmsg_checks";

    private readonly HashSet<string> _configChanges = new(StringComparer.Ordinal);
    private long _earliestCheck = long.MaxValue;

    /// <summary>
    /// Raised (on the writer thread) after a multi-active batch's commit got no answer. The broker carries on: the
    /// writer keeps no message across batches, and what else memory holds from the store is reloaded by the handler.
    /// </summary>
    internal event Action? OutcomeUnknownCarriedOn;

    /// <summary>
    /// Only the writer's lookups lock: a request's read (a GET, a lookup before the writer) takes no row lock, so it neither
    /// waits for a batch in flight nor, queued on the row's tuple lock, joins a deadlock between two brokers' batches.
    /// </summary>
    private string LockRead => _multiActive is null || !InBatch ? "" : " FOR UPDATE";

    private void BeginTransactionForLookups(NpgsqlConnection connection)
    {
        if (_multiActive is not null && _transaction is null) _transaction = connection.BeginTransaction();
    }

    /// <summary>A batch that wrote nothing: its transaction only held the locks of what it read.</summary>
    private void CommitReadOnly()
    {
        if (_transaction is not { } transaction) return;
        _transaction = null;
        try
        {
            transaction.Commit();
        }
        catch (Exception e) when (PostgreSqlErrors.IsUnavailable(e))
        {
            // Nothing was written; the locks go with the session.
            _writer?.Dispose();
            _writer = null;
        }
    }

    /// <summary>Rolls back a transaction the batch left open (it failed); a connection that cannot even do that is dropped.</summary>
    private void EndTransaction()
    {
        ClearAnnouncements();
        if (_transaction is not { } transaction) return;
        _transaction = null;
        try
        {
            transaction.Rollback();
        }
        catch (Exception e) when (PostgreSqlErrors.IsUnavailable(e) || e is InvalidOperationException)
        {
            _writer?.Dispose();
            _writer = null;
        }
    }

    private void ClearAnnouncements()
    {
        ForgetFanOutSubscriptions();
        _configChanges.Clear();
        _earliestCheck = long.MaxValue;
    }

    private void NoteCheckDue(StoredMessage message)
    {
        if (_multiActive is null || message.State != MessageState.Prepared || message.InTransaction is not null) return;
        _earliestCheck = Math.Min(_earliestCheck, message.NextCheckAt);
    }

    private void NoteConfigChange(string payload)
    {
        if (_multiActive is not null) _configChanges.Add(payload);
    }

    private void AddAnnouncements(NpgsqlBatch batch)
    {
        if (_multiActive is not { } options) return;
        foreach (var change in _configChanges) batch.BatchCommands.Add(PostgreSqlNotifications.NotifyCommand(ConfigChange.Channel, change));
        var horizon = options.Time.GetUtcNow().ToUnixTimeMilliseconds() + (long)options.CheckNotifyHorizon.TotalMilliseconds;
        if (_earliestCheck <= horizon)
        {
            batch.BatchCommands.Add(PostgreSqlNotifications.NotifyCommand(CheckDueChannel, _earliestCheck.ToString(CultureInfo.InvariantCulture)));
        }
    }

    private StoreOutcomeUnknownException CarryOnAfterUnknownOutcome(Exception cause)
    {
        OutcomeUnknownCarriedOn?.Invoke();
        return new StoreOutcomeUnknownException(
            "The connection to PostgreSQL broke while a batch of changes was being committed, so whether this request's change was stored is unknown " +
            $"({cause.Message}). Read the state back before repeating the request, or repeat it with the same transactionId or Idempotency-Key.");
    }

    /// <summary>The first key of the per-producer-group advisory locks ("hms2"); the second is <c>hashtext(name)</c>.</summary>
    internal const int ProducerGroupLockSpace = 0x686d7332;

    /// <summary>
    /// The writer reads a producer group only to change it (a PUT, a secret rotation). <c>FOR UPDATE</c> serializes two
    /// brokers' changes of a stored group, but locks nothing while there is no row: two brokers creating one group at once
    /// would both find none and both create a secret, the second overwriting the first's. Under this lock, held to the end
    /// of the batch's transaction, the second finds the first's group.
    /// </summary>
    private static void LockProducerGroup(NpgsqlConnection connection, string name)
    {
        using var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock($1, hashtext($2))", connection);
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = ProducerGroupLockSpace });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
        command.ExecuteNonQuery();
    }

    /// <summary>One subscription as committed (null: there is none): what another broker's change left.</summary>
    internal Subscription? FindSubscription(string group, string topic) => PostgreSqlErrors.Read(_dataSource, c =>
    {
        using var command = new NpgsqlCommand("SELECT doc FROM halfmsg_subscriptions WHERE id = $1", c);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = LiteDbMessageStore.SubscriptionId(group, topic) });
        return command.ExecuteScalar() is byte[] bson ? LiteDbMessageStore.SubscriptionFrom(LiteDB.BsonSerializer.Deserialize(bson)) : null;
    });
}
