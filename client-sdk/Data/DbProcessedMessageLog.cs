using System.Data.Common;

namespace HalfMsgBroker.Client;

/// <summary>
/// Consumer-side idempotency (DTM's barrier, Seata's fence): the message id is recorded in the consumer's own
/// database transaction under a unique key, together with the work it does, so a redelivered message is skipped.
/// Register it with <c>services.AddHalfMsgProcessedMessageLog()</c>, which also creates its table at start-up;
/// the databases are those of <see cref="DbTransactionLog"/>.
/// </summary>
public sealed class DbProcessedMessageLog
{
    /// <summary>Creates the helper for a table.</summary>
    /// <param name="tableName">The table (a plain identifier).</param>
    public DbProcessedMessageLog(string tableName = "halfmsg_processed_messages")
    {
        TableName = DbHelpers.CheckIdentifier(tableName, nameof(tableName));
    }

    /// <summary>The table.</summary>
    public string TableName { get; }

    /// <summary>Parameter prefix of the ADO.NET provider (default <c>@</c>).</summary>
    public string ParameterPrefix { get; init; } = "@";

    /// <summary>Clock for the <c>processed_at</c> column.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// DDL of the table (SQLite, PostgreSQL, MySQL); the primary key on (consumer_group, message_id) is what makes
    /// it work. <see cref="EnsureCreatedAsync"/> uses SQL Server's form of it on a SQL Server connection.
    /// </summary>
    public string CreateTableSql => DbHelpers.CreateTableSql(TableName, Columns, sqlServer: false);

    private const string Columns = "consumer_group VARCHAR(127) NOT NULL, message_id VARCHAR(200) NOT NULL, processed_at VARCHAR(40) NOT NULL, PRIMARY KEY (consumer_group, message_id)";

    /// <summary>Creates the table when missing (idempotent; <c>AddHalfMsgProcessedMessageLog</c> calls it at start-up).</summary>
    /// <param name="connection">A connection.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the table exists.</returns>
    public async Task EnsureCreatedAsync(DbConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await DbHelpers.ExecuteDdlAsync(connection, DbHelpers.CreateTableSql(TableName, Columns, DbHelpers.IsSqlServer(connection)), ParameterPrefix, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Records the message in <paramref name="transaction"/>. False when it was processed before (skip the work);
    /// a concurrent duplicate fails on the unique key with a <see cref="DbException"/> (roll back; the broker redelivers).
    /// </summary>
    /// <param name="transaction">The consumer's database transaction.</param>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="messageId">The message id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>True when this is the first time.</returns>
    public async Task<bool> TryRecordAsync(DbTransaction transaction, string consumerGroup, string messageId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(messageId);
        var connection = transaction.Connection ?? throw new ArgumentException("The transaction has no connection.", nameof(transaction));
        var select = DbHelpers.Command(
            connection,
            transaction,
            $"SELECT COUNT(*) FROM {TableName} WHERE consumer_group = {ParameterPrefix}g AND message_id = {ParameterPrefix}m",
            null,
            ParameterPrefix,
            ("g", consumerGroup),
            ("m", messageId));
        await using (select.ConfigureAwait(false))
        {
            var count = Convert.ToInt64(await select.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
            if (count > 0)
            {
                return false;
            }
        }

        var insert = DbHelpers.Command(
            connection,
            transaction,
            $"INSERT INTO {TableName} (consumer_group, message_id, processed_at) VALUES ({ParameterPrefix}g, {ParameterPrefix}m, {ParameterPrefix}at)",
            null,
            ParameterPrefix,
            ("g", consumerGroup),
            ("m", messageId),
            ("at", DbHelpers.Now(TimeProvider)));
        await using (insert.ConfigureAwait(false))
        {
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>
    /// Runs <paramref name="work"/> once per (consumer group, message id): opens a transaction, records the id,
    /// runs the work in the same transaction and commits. A redelivery is skipped.
    /// </summary>
    /// <param name="connection">The consumer's connection (no transaction open on it).</param>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="messageId">The message id.</param>
    /// <param name="work">The work, given the connection and the open transaction on it (enlist every command in it).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>True when the work ran and committed; false when the message had been processed already.</returns>
    public async Task<bool> ProcessOnceAsync(
        DbConnection connection,
        string consumerGroup,
        string messageId,
        Func<DbConnection, DbTransaction, CancellationToken, Task> work,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(work);
        await DbHelpers.EnsureOpenAsync(connection, cancellationToken).ConfigureAwait(false);
        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (transaction.ConfigureAwait(false))
        {
            if (!await TryRecordAsync(transaction, consumerGroup, messageId, cancellationToken).ConfigureAwait(false))
            {
                await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                return false;
            }

            await work(connection, transaction, cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }
    }

    /// <summary>Runs <paramref name="work"/> once per delivered message (see the other overload).</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <param name="connection">The consumer's connection.</param>
    /// <param name="delivery">The delivered message.</param>
    /// <param name="work">The work, given the connection and the open transaction on it.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>True when the work ran; false for a duplicate.</returns>
    public Task<bool> ProcessOnceAsync<T>(
        DbConnection connection,
        HalfMsgDelivery<T> delivery,
        Func<DbConnection, DbTransaction, CancellationToken, Task> work,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        return ProcessOnceAsync(connection, delivery.ConsumerGroup, delivery.MessageId, work, cancellationToken);
    }
}
