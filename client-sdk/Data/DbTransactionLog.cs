using System.Data.Common;

namespace HalfMsgBroker.Client;

/// <summary>
/// Producer-side transaction log that closes the check-back race (DTM's barrier table).
/// <para>
/// The local transaction calls <see cref="RecordInLocalTransactionAsync"/> inside its own database transaction,
/// before it commits, so the <c>transactionId</c> row commits or rolls back together with the business data. The checker calls
/// <see cref="CheckAsync"/>: a <c>committed</c> row means commit; no row means the local transaction
/// either failed or is still running, so the checker first inserts a <c>rolledBack</c> marker under the
/// same primary key and only then answers rollback. A local transaction still in flight then fails on its
/// own insert (unique key) or waits for the marker's lock and fails, instead of committing business data
/// after the broker dropped the message. If the marker insert itself fails (a lock held by the in-flight
/// transaction, a unique violation because it just committed), the checker looks again and answers
/// what it finds, or <see cref="LocalTransactionState.Unknown"/> so the broker asks again later.
/// </para>
/// <para>
/// Register it with <c>services.AddHalfMsgTransactionLog()</c>, which also creates its table at start-up.
/// Databases: SQLite, PostgreSQL and MySQL/MariaDB (<c>CREATE TABLE IF NOT EXISTS</c>) and SQL Server
/// (recognised by its connection type, <c>IF OBJECT_ID(…) IS NULL CREATE TABLE</c>), through any ADO.NET
/// provider whose parameters are named <see cref="ParameterPrefix"/> + name.
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
    /// Command timeout of the statements <see cref="CheckAsync"/> and <see cref="FindAsync"/> run (default 5 s;
    /// whole seconds, at least 1 s, as ADO.NET counts it). Keep it below the producer group's check timeout
    /// (<c>AddTransactionalProducer</c>'s <c>checkTimeout</c>, 3 s by default on the broker, so lower one or raise
    /// the other): a lock held by an in-flight local transaction then ends in <c>unknown</c>, not a broker timeout.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to less than 1 s.</exception>
    public TimeSpan CheckCommandTimeout
    {
        get => _checkCommandTimeout;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.FromSeconds(1), nameof(CheckCommandTimeout));
            _checkCommandTimeout = value;
        }
    }

    private readonly TimeSpan _checkCommandTimeout = TimeSpan.FromSeconds(5);

    private int CheckCommandTimeoutSeconds => HalfMsgLimits.WholeSeconds(_checkCommandTimeout);

    /// <summary>Clock for the <c>recorded_at</c> column.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// DDL of the table (SQLite, PostgreSQL, MySQL); the primary key on <c>transaction_id</c> is what closes the
    /// race. <see cref="EnsureCreatedAsync"/> uses SQL Server's form of it on a SQL Server connection.
    /// </summary>
    public string CreateTableSql => DbHelpers.CreateTableSql(TableName, Columns, sqlServer: false);

    private const string Columns = "transaction_id VARCHAR(200) NOT NULL PRIMARY KEY, state VARCHAR(16) NOT NULL, recorded_at VARCHAR(40) NOT NULL";

    /// <summary>Creates the table when missing (idempotent; <c>AddHalfMsgTransactionLog</c> calls it at start-up).</summary>
    /// <param name="connection">A connection.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the table exists.</returns>
    public async Task EnsureCreatedAsync(DbConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await DbHelpers.ExecuteDdlAsync(connection, DbHelpers.CreateTableSql(TableName, Columns, DbHelpers.IsSqlServer(connection)), ParameterPrefix, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes the <c>committed</c> row of <paramref name="transactionId"/> inside the local transaction, before
    /// it commits: the row becomes visible only if the local transaction commits, so a check-back then answers
    /// commit. Call it early in the local transaction. It throws a <see cref="DbException"/> (unique key) when a
    /// check-back already marked the transaction rolled back: let it abort the local transaction.
    /// </summary>
    /// <param name="transaction">The local database transaction.</param>
    /// <param name="transactionId">The half message's transaction id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the row is written (uncommitted).</returns>
    public async Task RecordInLocalTransactionAsync(DbTransaction transaction, string transactionId, CancellationToken cancellationToken = default)
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
