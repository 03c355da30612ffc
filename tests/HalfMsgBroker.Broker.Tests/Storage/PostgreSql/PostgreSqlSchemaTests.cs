using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>Schema creation and migration: versioned, idempotent, and safe when brokers start at once.</summary>
public sealed class PostgreSqlSchemaTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    private async Task<NpgsqlDataSource> EmptyDatabase() => NpgsqlDataSource.Create(await cluster.CreateDatabaseAsync("schema"));

    [PostgresFact]
    public async Task Migrating_again_changes_nothing_and_keeps_the_data()
    {
        await using var dataSource = await EmptyDatabase();
        Assert.Equal(0, PostgreSqlSchema.CurrentVersion(dataSource));
        Assert.Equal(PostgreSqlSchema.Migrations.Count, PostgreSqlSchema.Migrate(dataSource));
        using (var store = new PostgreSqlMessageStore(dataSource))
        {
            store.RunBatch(() => store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 2 }));
        }

        Assert.Equal(0, PostgreSqlSchema.Migrate(dataSource));
        Assert.Equal(PostgreSqlSchema.Migrations.Count, PostgreSqlSchema.CurrentVersion(dataSource));
        using var reopened = new PostgreSqlMessageStore(dataSource);
        Assert.Equal(2, Assert.Single(reopened.TopicCounts()).MessageCount);
    }

    [PostgresFact]
    public async Task Brokers_migrating_an_empty_database_at_once_take_turns()
    {
        await using var dataSource = await EmptyDatabase();
        using var start = new Barrier(6);
        var applied = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() =>
        {
            start.SignalAndWait();
            return PostgreSqlSchema.Migrate(dataSource);
        })));

        // One of them made the schema; the others waited for its lock and found it current.
        Assert.Equal(PostgreSqlSchema.Migrations.Count, applied.Sum());
        Assert.Single(applied, n => n > 0);
        Assert.Equal(PostgreSqlSchema.Migrations.Count, PostgreSqlSchema.CurrentVersion(dataSource));
    }

    [PostgresFact]
    public async Task A_later_migration_is_applied_once_after_the_ones_before()
    {
        await using var dataSource = await EmptyDatabase();
        PostgreSqlSchema.Migrate(dataSource);
        string[] next = [.. PostgreSqlSchema.Migrations, "ALTER TABLE halfmsg_meta ADD COLUMN note text"];

        Assert.Equal(1, PostgreSqlSchema.Migrate(dataSource, next));
        Assert.Equal(0, PostgreSqlSchema.Migrate(dataSource, next));
        Assert.Equal(next.Length, PostgreSqlSchema.CurrentVersion(dataSource));
    }

    [PostgresFact]
    public async Task A_database_migrated_by_a_newer_broker_is_refused_with_a_reason()
    {
        await using var dataSource = await EmptyDatabase();
        PostgreSqlSchema.Migrate(dataSource);
        await using (var command = dataSource.CreateCommand("INSERT INTO halfmsg_schema_version (version) VALUES (99)"))
        {
            await command.ExecuteNonQueryAsync();
        }

        var refused = Assert.Throws<InvalidOperationException>(() => PostgreSqlSchema.Migrate(dataSource));
        Assert.Contains("version 99, newer than this broker knows", refused.Message, StringComparison.Ordinal);
    }
}
