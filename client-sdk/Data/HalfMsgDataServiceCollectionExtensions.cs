using System.Data.Common;
using HalfMsgBroker.Client;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the ADO.NET helpers <see cref="DbTransactionLog"/> and <see cref="DbProcessedMessageLog"/>.</summary>
public static class HalfMsgDataServiceCollectionExtensions
{
    /// <summary>
    /// Registers <paramref name="log"/> (or a <see cref="DbTransactionLog"/> on its default table
    /// <c>halfmsg_transaction_log</c>) as a singleton, and creates its table when the host starts, before the
    /// app serves requests (<c>CREATE TABLE IF NOT EXISTS</c>, or SQL Server's equivalent: safe on every start).
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="dataSource">
    /// The database the table lives in: the same as the local transactions'. Null: the <see cref="DbDataSource"/>
    /// registered in DI (e.g. by Npgsql's <c>AddNpgsqlDataSource</c>). For SQLite or SQL Server, make one from the
    /// provider's factory: <c>_ =&gt; SqliteFactory.Instance.CreateDataSource(connectionString)</c> or
    /// <c>_ =&gt; SqlClientFactory.Instance.CreateDataSource(connectionString)</c>.
    /// </param>
    /// <param name="log">The helper with your table name, parameter prefix or check timeout; null for the defaults.</param>
    /// <param name="createTable">False to leave the table to your own migrations.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddHalfMsgTransactionLog(
        this IServiceCollection services,
        Func<IServiceProvider, DbDataSource>? dataSource = null,
        DbTransactionLog? log = null,
        bool createTable = true)
    {
        ArgumentNullException.ThrowIfNull(services);
        log ??= new DbTransactionLog();
        services.TryAddSingleton(log);
        if (createTable)
        {
            AddTableCreation(services, dataSource, log.TableName, log.EnsureCreatedAsync);
        }

        return services;
    }

    /// <summary>
    /// Registers <paramref name="log"/> (or a <see cref="DbProcessedMessageLog"/> on its default table
    /// <c>halfmsg_processed_messages</c>) as a singleton, and creates its table when the host starts (idempotent).
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="dataSource">The consumer's database; null for the <see cref="DbDataSource"/> in DI (see <see cref="AddHalfMsgTransactionLog"/>).</param>
    /// <param name="log">The helper with your table name or parameter prefix; null for the defaults.</param>
    /// <param name="createTable">False to leave the table to your own migrations.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddHalfMsgProcessedMessageLog(
        this IServiceCollection services,
        Func<IServiceProvider, DbDataSource>? dataSource = null,
        DbProcessedMessageLog? log = null,
        bool createTable = true)
    {
        ArgumentNullException.ThrowIfNull(services);
        log ??= new DbProcessedMessageLog();
        services.TryAddSingleton(log);
        if (createTable)
        {
            AddTableCreation(services, dataSource, log.TableName, log.EnsureCreatedAsync);
        }

        return services;
    }

    private static void AddTableCreation(
        IServiceCollection services,
        Func<IServiceProvider, DbDataSource>? dataSource,
        string table,
        Func<DbConnection, CancellationToken, Task> ensureCreated)
    {
        services.AddSingleton(new HalfMsgTableCreation(table, async (sp, ct) =>
        {
            var source = dataSource?.Invoke(sp) ?? sp.GetService<DbDataSource>()
                ?? throw new InvalidOperationException(
                    $"Creating the HalfMsg table '{table}' needs a database: pass a DbDataSource factory to AddHalfMsgTransactionLog/AddHalfMsgProcessedMessageLog, or register a DbDataSource.");
            var connection = await source.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                await ensureCreated(connection, ct).ConfigureAwait(false);
            }
        }));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, HalfMsgTableCreationService>());
    }
}

/// <summary>One table to create at start-up.</summary>
internal sealed record HalfMsgTableCreation(string Table, Func<IServiceProvider, CancellationToken, Task> CreateAsync);

/// <summary>Creates the helpers' tables when the host starts; a failure stops the start, as a missing table would fail every transaction.</summary>
internal sealed class HalfMsgTableCreationService(IEnumerable<HalfMsgTableCreation> tables, IServiceProvider services) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var table in tables)
        {
            await table.CreateAsync(services, cancellationToken).ConfigureAwait(false);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
