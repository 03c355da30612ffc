using Npgsql;
using NpgsqlTypes;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>The few shapes every PostgreSQL writer here builds its statements from.</summary>
internal static class BatchSql
{
    public static void Add(NpgsqlBatch batch, string sql, params NpgsqlParameter[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.AddRange(parameters);
        batch.BatchCommands.Add(command);
    }

    /// <summary>A whole column as one array parameter, for <c>unnest</c> or <c>= ANY</c>: one statement for many rows.</summary>
    public static NpgsqlParameter Array<T>(NpgsqlDbType type, IEnumerable<T> values) =>
        new() { NpgsqlDbType = NpgsqlDbType.Array | type, Value = values as T[] ?? values.ToArray() };

    public static NpgsqlParameter Value<T>(T value) => new NpgsqlParameter<T> { TypedValue = value };
}
