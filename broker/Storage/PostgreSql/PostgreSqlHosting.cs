using HalfMsgBroker.Configuration;
using Microsoft.Extensions.Options;
using Npgsql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// The services of <c>Broker:Storage:Provider=PostgreSql</c>: one <see cref="NpgsqlDataSource"/> (the pool)
/// for the connection string <c>ConnectionStrings:HalfMsg</c>, the active-broker lock, and the store.
/// Opening the store takes the lock first (a standby waits there, before anything listens), then
/// migrates the schema, so only the active broker ever changes it.
/// </summary>
internal static class PostgreSqlHosting
{
    public static string? ConnectionString(IConfiguration configuration) => configuration.GetConnectionString(PostgreSqlOptions.ConnectionStringName);

    public static void AddPostgreSqlStorage(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton(sp =>
        {
            // Reading the options validates them: a missing connection string is reported by name, not as Npgsql's error.
            _ = sp.GetRequiredService<IOptions<BrokerOptions>>().Value;
            return NpgsqlDataSource.Create(ConnectionString(configuration)!);
        });
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<BrokerOptions>>().Value;
            return new ActiveBrokerLock(
                ConnectionString(configuration)!,
                o.Storage.PostgreSql.LockCheckInterval,
                sp.GetRequiredService<ILoggerFactory>().CreateLogger("HalfMsgBroker.Storage.PostgreSql"),
                () => sp.GetRequiredService<IHostApplicationLifetime>().StopApplication());
        });
        services.AddSingleton<IMessageStore>(sp =>
        {
            var dataSource = sp.GetRequiredService<NpgsqlDataSource>();
            var activeLock = sp.GetRequiredService<ActiveBrokerLock>();
            activeLock.Acquire(sp.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping);
            var applied = PostgreSqlSchema.Migrate(dataSource);
            if (applied > 0)
            {
                sp.GetRequiredService<ILoggerFactory>().CreateLogger("HalfMsgBroker.Storage.PostgreSql")
                    .LogInformation("Applied {Count} schema migration(s); the database is at version {Version}", applied, PostgreSqlSchema.Migrations.Count);
            }
            return new PostgreSqlMessageStore(dataSource, activeLock);
        });
        services.AddSingleton<PostgreSqlReadiness>();
    }
}

/// <summary>What keeps a PostgreSQL broker from being ready: a lost database lock, or a database that does not answer.</summary>
internal sealed class PostgreSqlReadiness(IMessageStore store, ActiveBrokerLock activeLock, IOptions<BrokerOptions> options)
{
    public async Task<string?> ProblemAsync(CancellationToken cancellationToken)
    {
        if (activeLock.Lost) return "the connection holding the database lock is gone; the broker is stopping (another broker may be active)";
        return store is PostgreSqlMessageStore pg ? await pg.ProblemAsync(options.Value.Storage.PostgreSql.ReadyTimeout, cancellationToken) : null;
    }
}
