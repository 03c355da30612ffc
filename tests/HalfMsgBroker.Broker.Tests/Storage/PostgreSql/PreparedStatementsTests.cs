using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>
/// The broker's pool prepares its statements with custom plans, and does not reset a connection it takes back, unless the
/// operator's connection string decides otherwise: a generic plan of the batch statements (arrays as arguments) scanned
/// tables, and the reset is a query of its own before every use of a pooled connection.
/// </summary>
public sealed class PreparedStatementsTests
{
    [Fact]
    public void The_pool_prepares_statements_with_custom_plans_by_default_and_keeps_what_the_connection_string_says()
    {
        var byDefault = new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPoolDefaults("Host=127.0.0.1;Database=halfmsg"));
        Assert.Equal(32, byDefault.MaxAutoPrepare);
        Assert.Equal("-c plan_cache_mode=force_custom_plan", byDefault.Options);
        Assert.Equal("halfmsg", byDefault.Database);

        var withOptions = new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPoolDefaults("Host=127.0.0.1;Options=-c search_path=broker"));
        Assert.Equal("-c search_path=broker -c plan_cache_mode=force_custom_plan", withOptions.Options);
        var ownPlanMode = new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPoolDefaults("Host=127.0.0.1;Options=-c plan_cache_mode=auto"));
        Assert.Equal("-c plan_cache_mode=auto", ownPlanMode.Options);

        var off = new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPoolDefaults("Host=127.0.0.1;Max Auto Prepare=0"));
        Assert.Equal(0, off.MaxAutoPrepare);
        Assert.True(string.IsNullOrEmpty(off.Options));
        var more = new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPoolDefaults("Host=127.0.0.1;MaxAutoPrepare=100"));
        Assert.Equal(100, more.MaxAutoPrepare);
    }

    [Fact]
    public void The_pool_skips_the_reset_of_a_returned_connection_unless_the_connection_string_asks_for_it()
    {
        Assert.True(new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPoolDefaults("Host=127.0.0.1")).NoResetOnClose);
        Assert.True(new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPoolDefaults("Host=127.0.0.1;Max Auto Prepare=0")).NoResetOnClose);
        Assert.False(new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPoolDefaults("Host=127.0.0.1;No Reset On Close=false")).NoResetOnClose);
        Assert.False(new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPoolDefaults("Host=127.0.0.1;noresetonclose=false")).NoResetOnClose);
    }

}

/// <summary>What <see cref="PreparedStatementsTests"/> checks of the connection string, as a real session sees it.</summary>
public sealed class PreparedStatementsSessionTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task A_pooled_connection_plans_each_run_for_its_arguments()
    {
        await using var dataSource = NpgsqlDataSource.Create(PostgreSqlHosting.WithPoolDefaults(await cluster.CreateDatabaseAsync("prepared")));
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand("SHOW plan_cache_mode", connection);
        Assert.Equal("force_custom_plan", (string?)await command.ExecuteScalarAsync());
    }
}
