using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>
/// Every listing and due-time query is served by an index in the order it returns, so it stops at its
/// LIMIT instead of reading and sorting everything that matches. Sequential scans are switched off (the
/// tables are tiny, where a scan would win), and a plan that still needs a Sort has no index for its order.
/// </summary>
public sealed class PostgreSqlQueryPlanTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    public static TheoryData<string, string> Queries => new()
    {
        { nameof(PostgreSqlMessageStore.DueChecksSql), "halfmsg_messages_check" },
        { nameof(PostgreSqlMessageStore.LatestDueChecksSql), "halfmsg_messages_check" },
        { nameof(PostgreSqlMessageStore.DuePurgesSql), "halfmsg_messages_purge" },
        { nameof(PostgreSqlMessageStore.OpenMessagesSql), "halfmsg_messages_open" },
        { nameof(PostgreSqlMessageStore.ExpiredDeadLettersSql), "halfmsg_dead_letters_expiry" },
        { nameof(PostgreSqlMessageStore.KeySql), "halfmsg_message_keys_pkey" },
        { nameof(PostgreSqlMessageStore.KeyOnTopicSql), "halfmsg_message_keys_pkey" },
        { nameof(PostgreSqlMessageStore.DeadLetterIdsSql), "halfmsg_dead_letters_group" },
        { nameof(PostgreSqlMessageStore.DeadLetterIdsOnTopicSql), "using halfmsg_dead_letters_" }, // its key, or the group's (both in id order)
        { nameof(PostgreSqlMessageStore.CommittedOnSql), "halfmsg_messages_replay" },
        { nameof(PostgreSqlMessageStore.TransactionsSql), "halfmsg_messages_transactions" },
        { nameof(PostgreSqlMessageStore.PreparedTransactionsSql), "halfmsg_messages_prepared" },
    };

    private static readonly Dictionary<string, (string Sql, object?[] Parameters)> Calls = new()
    {
        [nameof(PostgreSqlMessageStore.DueChecksSql)] = (PostgreSqlMessageStore.DueChecksSql, [1_000L, 10L]),
        [nameof(PostgreSqlMessageStore.LatestDueChecksSql)] = (PostgreSqlMessageStore.LatestDueChecksSql, [1_000L, 10L]),
        [nameof(PostgreSqlMessageStore.DuePurgesSql)] = (PostgreSqlMessageStore.DuePurgesSql, [1_000L, 10L]),
        [nameof(PostgreSqlMessageStore.OpenMessagesSql)] = (PostgreSqlMessageStore.OpenMessagesSql, [Guid.Empty, 5000L]),
        [nameof(PostgreSqlMessageStore.ExpiredDeadLettersSql)] = (PostgreSqlMessageStore.ExpiredDeadLettersSql, [1_000L, 10L]),
        [nameof(PostgreSqlMessageStore.KeySql)] = (PostgreSqlMessageStore.KeySql, ["order-7", Guid.Empty, 11L]),
        [nameof(PostgreSqlMessageStore.KeyOnTopicSql)] = (PostgreSqlMessageStore.KeyOnTopicSql, ["order-7", Guid.Empty, 11L, "orders"]),
        [nameof(PostgreSqlMessageStore.DeadLetterIdsSql)] = (PostgreSqlMessageStore.DeadLetterIdsSql, ["g", Guid.Empty, 11L]),
        [nameof(PostgreSqlMessageStore.DeadLetterIdsOnTopicSql)] = (PostgreSqlMessageStore.DeadLetterIdsOnTopicSql, ["g", Guid.Empty, 11L, "orders"]),
        [nameof(PostgreSqlMessageStore.CommittedOnSql)] = (PostgreSqlMessageStore.CommittedOnSql, ["orders", 0L, Guid.Empty, 1_000L, 10L]),
        [nameof(PostgreSqlMessageStore.TransactionsSql)] = (PostgreSqlMessageStore.TransactionsSql, [Guid.Empty, null, null, 64L, null]),
        [nameof(PostgreSqlMessageStore.PreparedTransactionsSql)] = (PostgreSqlMessageStore.PreparedTransactionsSql, [Guid.Empty, null, null, 64L, null]),
    };

    [PostgresTheory]
    [MemberData(nameof(Queries))]
    public async Task The_query_walks_its_index_in_order_and_stops_at_its_limit(string query, string index)
    {
        await using var dataSource = NpgsqlDataSource.Create(await cluster.CreateDatabaseAsync("plan"));
        PostgreSqlSchema.Migrate(dataSource);
        await using var connection = await dataSource.OpenConnectionAsync();
        await using (var off = new NpgsqlCommand("SET enable_seqscan = off; SET enable_bitmapscan = off", connection)) await off.ExecuteNonQueryAsync();

        var (sql, parameters) = Calls[query];
        await using var explain = new NpgsqlCommand("EXPLAIN " + sql, connection);
        foreach (var p in parameters) explain.Parameters.Add(new NpgsqlParameter { Value = p ?? DBNull.Value });
        var plan = new List<string>();
        await using (var reader = await explain.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync()) plan.Add(reader.GetString(0));
        }

        var text = string.Join('\n', plan);
        Assert.True(plan[0].StartsWith("Limit", StringComparison.Ordinal) && text.Contains(index, StringComparison.Ordinal) && !text.Contains("Sort", StringComparison.Ordinal), text);
    }
}

/// <summary>A theory that is skipped where PostgreSQL cannot be started, as <see cref="PostgresFactAttribute"/> is for facts.</summary>
public sealed class PostgresTheoryAttribute : TheoryAttribute
{
    public PostgresTheoryAttribute()
    {
        if (PostgresCluster.Unavailable is { } reason) Skip = reason;
    }
}
