using System.Data.Common;

namespace HalfMsgBroker.Client;

/// <summary>
/// Producer-side transaction log that closes the check-back race (DTM's barrier table).
/// <para>
/// The local transaction calls <see cref="RecordCommitAsync"/> inside its own database transaction, so the
/// <c>transactionId</c> row commits or rolls back together with the business data. The checker calls
/// <see cref="CheckAsync"/>: a <c>committed</c> row means commit; no row means the local transaction
/// either failed or is still running, so the checker first inserts a <c>rolledBack</c> marker under the
/// same primary key and only then answers rollback. A local transaction still in flight then fails on its
/// own insert (unique key) or waits for the marker's lock and fails, instead of committing business data
/// after the broker dropped the message. If the marker insert itself fails (a lock held by the in-flight
/// transaction, a unique violation because it just committed), the checker looks again and answers
/// what it finds, or <see cref="LocalTransactionState.Unknown"/> so the broker asks again later.
/// </para>
/// </summary>
public sealed class DbTransactionLog
{
    private const string Committed = "committed";
    private const string RolledBack = "rolledBack";

    /// <summary>Creates the helper for a table.</summary>
    /// <param name="tableName">The log table (a plain identifier).</param>
    public DbTransactionLog(string tableName = "halfmsg_transaction_log")
    {
        TableName = DbHelpers.CheckIdentifier(tableName, nameof(tableName));
    }

    /// <summary>The log table.</summary>
    public string TableName { get; }

    /// <summary>Parameter prefix of the ADO.NET provider (default <c>@</c>: SQLite, SQL Server, PostgreSQL, MySQL).</summary>
    public string ParameterPrefix { get; init; } = "@";

    /// <summary>
    /// Command timeout of the checker's statements (default 5 s). Keep it below the producer group's
    /// check timeout: a lock held by an in-flight local transaction then ends in <c>unknown</c>, not a broker timeout.
    /// </summary>
    public int CheckCommandTimeoutSeconds { get; init; } = 5;

    /// <summary>Clock for the <c>recorded_at</c> column.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Portable DDL of the table; the primary key on <c>transaction_id</c> is what closes the race.</summary>
    public string CreateTableSql =>
        $"CREATE TABLE IF NOT EXISTS {TableName} (transaction_id VARCHAR(200) NOT NULL PRIMARY KEY, state VARCHAR(16) NOT NULL, recorded_at VARCHAR(40) NOT NULL)";

    /// <summary>Creates the table when missing (<see cref="CreateTableSql"/>; run your own DDL where that dialect does not fit).</summary>
    /// <param name="connection">A connection.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the table exists.</returns>
    public async Task EnsureCreatedAsync(DbConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await DbHelpers.ExecuteDdlAsync(connection, CreateTableSql, ParameterPrefix, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Records, inside the local transaction, that <paramref name="transactionId"/> committed. Call it early in the
    /// local transaction. It throws a <see cref="DbException"/> (unique key) when a check-back already marked the
    /// transaction rolled back: let it abort the local transaction.
    /// </summary>
    /// <param name="transaction">The local database transaction.</param>
    /// <param name="transactionId">The half message's transaction id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the row is written (uncommitted).</returns>
    public async Task RecordCommitAsync(DbTransaction transaction, string transactionId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentException.ThrowIfNullOrEmpty(transactionId);
        var connection = transaction.Connection ?? throw new ArgumentException("The transaction has no connection.", nameof(transaction));
        var command = DbHelpers.Command(
            connection,
            transaction,
            $"INSERT INTO {TableName} (transaction_id, state, recorded_at) VALUES ({ParameterPrefix}id, {ParameterPrefix}state, {ParameterPrefix}at)",
            null,
            ParameterPrefix,
            ("id", transactionId),
            ("state", Committed),
            ("at", DbHelpers.Now(TimeProvider)));
        await using (command.ConfigureAwait(false))
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Looks the transaction up without changing anything.</summary>
    /// <param name="connection">A connection (not inside the local transaction).</param>
    /// <param name="transactionId">The transaction id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>Commit or rollback when recorded; null when there is no row.</returns>
    public async Task<LocalTransactionState?> FindAsync(DbConnection connection, string transactionId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(transactionId);
        await DbHelpers.EnsureOpenAsync(connection, cancellationToken).ConfigureAwait(false);
        var command = DbHelpers.Command(
            connection,
            null,
            $"SELECT state FROM {TableName} WHERE transaction_id = {ParameterPrefix}id",
            CheckCommandTimeoutSeconds,
            ParameterPrefix,
            ("id", transactionId));
        await using (command.ConfigureAwait(false))
        {
            var value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            return value switch
            {
                string s when s == Committed => LocalTransactionState.Commit,
                string s when s == RolledBack => LocalTransactionState.Rollback,
                null or DBNull => null,
                _ => LocalTransactionState.Unknown,
            };
        }
    }

    /// <summary>
    /// Answers a check-back: commit when the local transaction recorded itself; otherwise marks the transaction
    /// rolled back first (so an in-flight local transaction can no longer commit) and answers rollback; unknown
    /// when neither can be established right now.
    /// </summary>
    /// <param name="connection">A connection of its own (not the local transaction's).</param>
    /// <param name="transactionId">The transaction id from the check-back.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The state to answer.</returns>
    public async Task<LocalTransactionState> CheckAsync(DbConnection connection, string transactionId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(transactionId);
        if (await FindAsync(connection, transactionId, cancellationToken).ConfigureAwait(false) is { } found)
        {
            return found;
        }

        try
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                var command = DbHelpers.Command(
                    connection,
                    transaction,
                    $"INSERT INTO {TableName} (transaction_id, state, recorded_at) VALUES ({ParameterPrefix}id, {ParameterPrefix}state, {ParameterPrefix}at)",
                    CheckCommandTimeoutSeconds,
                    ParameterPrefix,
                    ("id", transactionId),
                    ("state", RolledBack),
                    ("at", DbHelpers.Now(TimeProvider)));
                await using (command.ConfigureAwait(false))
                {
                    await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            return LocalTransactionState.Rollback;
        }
        catch (DbException)
        {
            // the local transaction committed meanwhile (unique key) or still holds a lock: look again
            try
            {
                return await FindAsync(connection, transactionId, cancellationToken).ConfigureAwait(false) ?? LocalTransactionState.Unknown;
            }
            catch (DbException)
            {
                return LocalTransactionState.Unknown;
            }
        }
    }
}
