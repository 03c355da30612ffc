using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using Npgsql;
using NpgsqlTypes;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// <c>halfmsg_deliveries</c> churns (a row per delivery, inserted at commit, deleted at ack) faster than autovacuum visits
/// it, so between visits it is mostly dead rows the statistics do not know of. The statements a batch runs on it find their
/// rows by the primary key whatever the planner thinks of the table's size: a sequential scan of the dead rows took over a
/// millisecond a batch at 1,000 msg/s. Checked as PostgreSQL plans them on first use and once prepared (a generic plan).
/// </summary>
public sealed class DeliveryRowPlanTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    public static TheoryData<string, string> Statements => new()
    {
        { nameof(DeliveryRowWrites.NotLiveSql), "force_custom_plan" },
        { nameof(DeliveryRowWrites.NotLiveSql), "force_generic_plan" },
        { nameof(PostgreSqlMessageStore.LeasesSql), "force_custom_plan" },
        { nameof(PostgreSqlMessageStore.LeasesSql), "force_generic_plan" },
    };

    [PostgresTheory]
    [MemberData(nameof(Statements))]
    public async Task A_batch_statement_finds_its_delivery_rows_by_the_key_in_a_table_of_dead_rows(string statement, string planCacheMode)
    {
        await using var dataSource = NpgsqlDataSource.Create(await cluster.CreateDatabaseAsync("deliveryplan"));
        PostgreSqlSchema.Migrate(dataSource);
        await using var connection = await dataSource.OpenConnectionAsync();
        // A minute of traffic as autovacuum has not seen it yet: 30,000 deliveries come and gone, 50 live.
        await using (var churn = new NpgsqlCommand("""
            INSERT INTO halfmsg_deliveries (message_id, consumer_group, topic, visible_at, nonce, attempts, ordering_key, commit_seq, stored_key)
                SELECT gen_random_uuid(), 'g', 'orders', 1, 0, 0, NULL, 0, 0 FROM generate_series(1, 30000);
            DELETE FROM halfmsg_deliveries;
            INSERT INTO halfmsg_deliveries (message_id, consumer_group, topic, visible_at, nonce, attempts, ordering_key, commit_seq, stored_key)
                SELECT gen_random_uuid(), 'g', 'orders', 1, 0, 0, NULL, 0, 0 FROM generate_series(1, 50);
            """, connection))
        {
            await churn.ExecuteNonQueryAsync();
        }
        await using (var mode = new NpgsqlCommand($"SET plan_cache_mode = {planCacheMode}", connection)) await mode.ExecuteNonQueryAsync();

        var ids = Enumerable.Range(0, 10).Select(_ => Guid.NewGuid()).ToArray();
        var sql = statement == nameof(DeliveryRowWrites.NotLiveSql) ? DeliveryRowWrites.NotLiveSql : PostgreSqlMessageStore.LeasesSql;
        var second = statement == nameof(DeliveryRowWrites.NotLiveSql)
            ? ids.Select(_ => "g").ToArray()
            : ids.Select(id => $"{id:D}\ng").ToArray();
        await using var explain = new NpgsqlCommand("EXPLAIN " + sql, connection);
        explain.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid, Value = ids });
        explain.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text, Value = second });
        var plan = new List<string>();
        await using (var reader = await explain.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync()) plan.Add(reader.GetString(0));
        }

        var text = string.Join('\n', plan);
        Assert.True(text.Contains("halfmsg_deliveries_pkey", StringComparison.Ordinal) && !text.Contains("Seq Scan", StringComparison.Ordinal), text);
    }
}
