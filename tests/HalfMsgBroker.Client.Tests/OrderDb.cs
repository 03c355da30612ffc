using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;

namespace HalfMsgBroker.Client.Tests;

public sealed record Order(string OrderId, int Quantity);

/// <summary>The producer's (or consumer's) own SQLite database, on a temp file.</summary>
public sealed class OrderDb : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-orders-" + Guid.NewGuid().ToString("N") + ".db");

    public OrderDb()
    {
        ConnectionString = new SqliteConnectionStringBuilder { DataSource = _path, Pooling = false, DefaultTimeout = 1 }.ToString();
        using var connection = Open();
        Log.EnsureCreatedAsync(connection).GetAwaiter().GetResult();
        Processed.EnsureCreatedAsync(connection).GetAwaiter().GetResult();
        using var command = connection.CreateCommand();
        command.CommandText = "CREATE TABLE orders (order_id TEXT PRIMARY KEY, transaction_id TEXT NOT NULL); CREATE TABLE reservations (order_id TEXT NOT NULL);";
        command.ExecuteNonQuery();
    }

    public string ConnectionString { get; }

    public DbTransactionLog Log { get; } = new() { CheckCommandTimeout = TimeSpan.FromSeconds(1) };

    public DbProcessedMessageLog Processed { get; } = new();

    /// <summary>Every answer the checker gave, in order.</summary>
    public ConcurrentQueue<(string TransactionId, LocalTransactionState State)> CheckAnswers { get; } = new();

    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(ConnectionString);
        connection.Open();
        return connection;
    }

    public static async Task InsertOrderAsync(SqliteTransaction transaction, string orderId, string transactionId)
    {
        await using var command = transaction.Connection!.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "INSERT INTO orders (order_id, transaction_id) VALUES ($o, $t)";
        command.Parameters.AddWithValue("$o", orderId);
        command.Parameters.AddWithValue("$t", transactionId);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>The local transaction of "place an order": the order and the transaction log row commit together.</summary>
    public async Task PlaceOrderAsync(string orderId, string transactionId)
    {
        await using var connection = Open();
        await using var transaction = connection.BeginTransaction();
        await Log.RecordInLocalTransactionAsync(transaction, transactionId);
        await InsertOrderAsync(transaction, orderId, transactionId);
        await transaction.CommitAsync();
    }

    public long Count(string table, string? orderId = null)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = orderId is null ? $"SELECT COUNT(*) FROM {table}" : $"SELECT COUNT(*) FROM {table} WHERE order_id = $o";
        if (orderId is not null)
        {
            command.Parameters.AddWithValue("$o", orderId);
        }

        return (long)command.ExecuteScalar()!;
    }

    public void Dispose()
    {
        try
        {
            File.Delete(_path);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>The app's checker: the transaction log decides (and closes the race).</summary>
public sealed class LogChecker(OrderDb db) : ITransactionChecker
{
    public async Task<LocalTransactionState> CheckAsync(TransactionCheckRequest request, CancellationToken cancellationToken = default)
    {
        await using var connection = db.Open();
        var state = await db.Log.CheckAsync(connection, request.TransactionId, cancellationToken);
        db.CheckAnswers.Enqueue((request.TransactionId, state));
        return state;
    }
}
