using System.Data.Common;
using System.Globalization;
using System.Text.RegularExpressions;

namespace HalfMsgBroker.Client;

internal static partial class DbHelpers
{
    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_.]{0,127}$")]
    private static partial Regex IdentifierPattern();

    public static string CheckIdentifier(string name, string paramName)
    {
        ArgumentException.ThrowIfNullOrEmpty(name, paramName);
        if (!IdentifierPattern().IsMatch(name))
        {
            throw new ArgumentException($"'{name}' is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_.]*).", paramName);
        }

        return name;
    }

    public static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, int? timeoutSeconds, string prefix, params (string Name, object Value)[] parameters)
    {
        var command = connection.CreateCommand();
#pragma warning disable CA2100 // table names are validated identifiers; values are parameters
        command.CommandText = sql;
#pragma warning restore CA2100
        command.Transaction = transaction;
        if (timeoutSeconds is { } timeout)
        {
            command.CommandTimeout = timeout;
        }

        foreach (var (name, value) in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = prefix + name;
            parameter.Value = value;
            command.Parameters.Add(parameter);
        }

        return command;
    }

    /// <summary>SQL Server has no <c>CREATE TABLE IF NOT EXISTS</c>; every other supported database does.</summary>
    public static string CreateTableSql(string table, string columns, bool sqlServer) =>
        sqlServer
            ? $"IF OBJECT_ID(N'{table}', N'U') IS NULL CREATE TABLE {table} ({columns})"
            : $"CREATE TABLE IF NOT EXISTS {table} ({columns})";

    /// <summary>Microsoft.Data.SqlClient's or System.Data.SqlClient's connection.</summary>
    public static bool IsSqlServer(DbConnection connection) =>
        connection.GetType().FullName is "Microsoft.Data.SqlClient.SqlConnection" or "System.Data.SqlClient.SqlConnection";

    public static string Now(TimeProvider time) => time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture);

    /// <summary>Runs one statement outside any transaction (table creation).</summary>
    public static async Task ExecuteDdlAsync(DbConnection connection, string sql, string prefix, CancellationToken cancellationToken)
    {
        await EnsureOpenAsync(connection, cancellationToken).ConfigureAwait(false);
        var command = Command(connection, null, sql, null, prefix);
        await using (command.ConfigureAwait(false))
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public static async Task EnsureOpenAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        if (connection.State != System.Data.ConnectionState.Open)
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
