using System.Net.Sockets;
using Npgsql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// Turns what Npgsql throws into the store's own answers: a unique violation is a
/// <see cref="DuplicateKeyException"/> (the writer then retries its batch one command at a time), and
/// PostgreSQL being out of reach is a <see cref="StoreUnavailableException"/> (503 storage-unavailable).
/// Anything else is a bug and stays what it is.
/// </summary>
internal static class PostgreSqlErrors
{
    public static Exception Translate(Exception e) => e switch
    {
        PostgresException { SqlState: PostgresErrorCodes.UniqueViolation } unique =>
            new DuplicateKeyException(unique.ConstraintName ?? unique.MessageText),
        PostgresException { SqlState: PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure } conflict =>
            new StoreConflictException(
                $"This change collided with another broker's change of the same messages ({conflict.SqlState}: {conflict.MessageText}); nothing was changed. Retry.", conflict),
        PostgresException { SqlState: PostgresErrorCodes.CharacterNotInRepertoire or PostgresErrorCodes.UntranslatableCharacter } refused =>
            new StoreRefusedInputException(
                $"A text value in the request holds a character PostgreSQL cannot store ({refused.MessageText}); remove control characters (such as NUL) from keys, names and ids. Nothing was changed."),
        _ when IsUnavailable(e) => new StoreUnavailableException(
            $"PostgreSQL is not answering ({Describe(e)}); nothing was changed by this request. Retry shortly."),
        _ => e,
    };

    /// <summary>
    /// A connection that failed or broke (Npgsql's own exceptions are all about the connection: I/O, timeouts,
    /// a full pool), or a server that is shutting down, not accepting connections, or out of resources.
    /// </summary>
    public static bool IsUnavailable(Exception e) => e switch
    {
        PostgresException p => p.SqlState.StartsWith("08", StringComparison.Ordinal) // connection exception
            || p.SqlState.StartsWith("53", StringComparison.Ordinal) // insufficient resources (disk full, too many connections)
            || p.SqlState.StartsWith("57P", StringComparison.Ordinal) // admin/crash shutdown, cannot connect now
            || p.SqlState.StartsWith("58", StringComparison.Ordinal) // system error (I/O)
            || p.SqlState == PostgresErrorCodes.QueryCanceled,
        NpgsqlException => true,
        SocketException or IOException or TimeoutException => true,
        _ => false,
    };

    private static string Describe(Exception e) => e is PostgresException p ? $"{p.SqlState}: {p.MessageText}" : e.Message;

    /// <summary>Runs <paramref name="read"/> on a pooled connection, translating failures.</summary>
    public static T Read<T>(NpgsqlDataSource dataSource, Func<NpgsqlConnection, T> read)
    {
        try
        {
            using var connection = dataSource.OpenConnection();
            return read(connection);
        }
        catch (Exception e) when (Translate(e) is var translated && translated != e)
        {
            throw translated;
        }
    }
}
