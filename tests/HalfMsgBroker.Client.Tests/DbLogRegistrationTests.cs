using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace HalfMsgBroker.Client.Tests;

/// <summary><c>AddHalfMsgTransactionLog</c> / <c>AddHalfMsgProcessedMessageLog</c>: registered, tables created at start, idempotently.</summary>
public sealed class DbLogRegistrationTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-dblog-" + Guid.NewGuid().ToString("N") + ".db");

    private string ConnectionString => new SqliteConnectionStringBuilder { DataSource = _path, Pooling = false }.ToString();

    public void Dispose() => File.Delete(_path);

    private IHost Build(Action<IServiceCollection> configure)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        configure(builder.Services);
        return builder.Build();
    }

    private List<string> Tables()
    {
        using var connection = new SqliteConnection(ConnectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name";
        using var reader = command.ExecuteReader();
        var names = new List<string>();
        while (reader.Read())
        {
            names.Add(reader.GetString(0));
        }

        return names;
    }

    [Fact]
    public async Task Both_logs_are_registered_and_their_tables_created_at_start_on_every_start()
    {
        for (var start = 1; start <= 2; start++)
        {
            using var host = Build(services => services
                .AddHalfMsgTransactionLog(_ => SqliteFactory.Instance.CreateDataSource(ConnectionString))
                .AddHalfMsgProcessedMessageLog(_ => SqliteFactory.Instance.CreateDataSource(ConnectionString), new DbProcessedMessageLog("inventory_processed")));
            Assert.Equal("halfmsg_transaction_log", host.Services.GetRequiredService<DbTransactionLog>().TableName);
            Assert.Equal("inventory_processed", host.Services.GetRequiredService<DbProcessedMessageLog>().TableName);
            if (start == 1)
            {
                Assert.Empty(Tables());
            }

            await host.StartAsync(); // the second start finds the tables and leaves them
            await host.StopAsync();
            Assert.Equal(["halfmsg_transaction_log", "inventory_processed"], Tables());
        }

        // The tables work: a recorded transaction is found by the checker.
        var log = new DbTransactionLog();
        await using var connection = new SqliteConnection(ConnectionString);
        await connection.OpenAsync();
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await log.RecordInLocalTransactionAsync(transaction, "tx-1");
            await transaction.CommitAsync();
        }

        Assert.Equal(LocalTransactionState.Commit, await log.CheckAsync(connection, "tx-1"));
    }

    [Fact]
    public async Task The_data_source_registered_in_DI_is_used_when_none_is_given()
    {
        using var host = Build(services => services
            .AddSingleton<DbDataSource>(SqliteFactory.Instance.CreateDataSource(ConnectionString))
            .AddHalfMsgTransactionLog());
        await host.StartAsync();
        await host.StopAsync();
        Assert.Equal(["halfmsg_transaction_log"], Tables());
    }

    [Fact]
    public async Task Without_a_database_the_start_fails_saying_what_to_register()
    {
        using var host = Build(services => services.AddHalfMsgProcessedMessageLog());
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());
        Assert.Contains("halfmsg_processed_messages", ex.Message, StringComparison.Ordinal);
        Assert.Contains("register a DbDataSource", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateTable_false_leaves_the_table_to_migrations()
    {
        using var host = Build(services => services.AddHalfMsgTransactionLog(_ => SqliteFactory.Instance.CreateDataSource(ConnectionString), createTable: false));
        await host.StartAsync();
        await host.StopAsync();
        Assert.NotNull(host.Services.GetRequiredService<DbTransactionLog>());
        Assert.Empty(Tables());
    }
}
