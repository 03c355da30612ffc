using HalfMsgBroker.Delivery.PostgreSql;
using HalfMsgBroker.Configuration;
using Microsoft.Extensions.Options;
using Npgsql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// The services of <c>Broker:Storage:Provider=PostgreSql</c>: one <see cref="NpgsqlDataSource"/> (the pool)
/// for the connection string <c>ConnectionStrings:HalfMsg</c>, the active-broker lock, and the store.
/// Opening the store takes the lock first (a standby waits there, before anything listens), then
/// migrates the schema, so only the active broker ever changes it. Multi-active brokers take it shared.
/// </summary>
internal static class PostgreSqlHosting
{
    public static string? ConnectionString(IConfiguration configuration) => configuration.GetConnectionString(PostgreSqlOptions.ConnectionStringName);

    /// <summary>
    /// The pool's defaults, each kept only where the connection string does not decide it:
    /// <list type="bullet">
    /// <item>The broker runs a handful of statements hundreds of times a second, so Npgsql prepares them (<c>Max Auto
    /// Prepare</c>: parsed once per connection), and PostgreSQL still plans each run for its own arguments
    /// (<c>plan_cache_mode=force_custom_plan</c>): the statements take whole columns as arrays, and a generic plan, blind to
    /// their sizes, scanned tables (the batch's locking read went from 0.11 to 5.6 ms).</item>
    /// <item><c>No Reset On Close</c>: a pooled connection that goes back to the pool is not reset. The reset is a query of seven
    /// statements (<c>SET SESSION AUTHORIZATION DEFAULT</c>, <c>RESET ALL</c>, <c>CLOSE ALL</c>, <c>UNLISTEN *</c>,
    /// <c>pg_advisory_unlock_all()</c>, <c>DISCARD SEQUENCES</c>, <c>DISCARD TEMP</c>) run ahead of the connection's next
    /// use, and every claim, lease lookup and read takes a connection from the pool. The broker leaves nothing in a pooled
    /// session to reset: its settings are <c>SET LOCAL</c>, its advisory locks end with their transaction, it makes no
    /// temporary tables or cursors, and what lives with a session (the broker lock, <c>LISTEN</c>) has an unpooled
    /// connection of its own. Npgsql still rolls back a transaction left open.</item>
    /// </list>
    /// </summary>
    internal static string WithPoolDefaults(string connectionString)
    {
        // Npgsql's builder claims every keyword it knows; a plain one holds only what the string says.
        var said = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString };
        bool Says(string keyword) => said.Keys.Cast<string>().Any(k => string.Equals(k.Replace(" ", "", StringComparison.Ordinal), keyword, StringComparison.OrdinalIgnoreCase));
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (!Says("NoResetOnClose")) builder.NoResetOnClose = true;
        if (Says("MaxAutoPrepare")) return builder.ConnectionString;
        builder.MaxAutoPrepare = 32;
        if (builder.Options?.Contains("plan_cache_mode", StringComparison.Ordinal) != true)
        {
            builder.Options = string.IsNullOrWhiteSpace(builder.Options) ? "-c plan_cache_mode=force_custom_plan" : builder.Options + " -c plan_cache_mode=force_custom_plan";
        }
        return builder.ConnectionString;
    }

    public static void AddPostgreSqlStorage(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton(sp =>
        {
            // Reading the options validates them: a missing connection string is reported by name, not as Npgsql's error.
            _ = sp.GetRequiredService<IOptions<BrokerOptions>>().Value;
            return NpgsqlDataSource.Create(WithPoolDefaults(ConnectionString(configuration)!));
        });
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<BrokerOptions>>().Value;
            return new ActiveBrokerLock(
                ConnectionString(configuration)!,
                o.Storage.PostgreSql.LockCheckInterval,
                sp.GetRequiredService<ILoggerFactory>().CreateLogger("HalfMsgBroker.Storage.PostgreSql"),
                () => sp.GetRequiredService<IHostApplicationLifetime>().StopApplication(),
                shared: MultiActive(sp));
        });
        services.AddSingleton<IMessageStore>(sp =>
        {
            var dataSource = sp.GetRequiredService<NpgsqlDataSource>();
            // Many active brokers share the lock; one without MultiActive holds it alone: the two modes exclude each other.
            var activeLock = sp.GetRequiredService<ActiveBrokerLock>();
            activeLock.Acquire(sp.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping);
            var logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("HalfMsgBroker.Storage.PostgreSql");
            var applied = PostgreSqlSchema.Migrate(dataSource);
            if (applied > 0)
            {
                logger.LogInformation("Applied {Count} schema migration(s); the database is at version {Version}", applied, PostgreSqlSchema.Migrations.Count);
            }
            activeLock.TakeGeneration(dataSource);
            var o = sp.GetRequiredService<IOptions<BrokerOptions>>().Value;
            if (!MultiActive(sp)) DeliveryRows.Forget(dataSource); // only multi-active brokers keep delivery rows
            return new PostgreSqlMessageStore(dataSource, activeLock, e =>
            {
                logger.LogCritical(e,
                    "The connection to PostgreSQL broke while a batch was being committed; whether it was stored is unknown. The broker takes no more writes and stops; restart it: recovery rebuilds its state from the database.");
                sp.GetRequiredService<IHostApplicationLifetime>().StopApplication();
            }, MultiActive(sp) ? new MultiActiveOptions(o.Transactions.IdleScanInterval, sp.GetRequiredService<TimeProvider>()) : null, deliveryRows: MultiActive(sp));
        });
        services.AddSingleton(sp => new PostgreSqlReadiness(
            sp.GetRequiredService<IMessageStore>(),
            sp.GetRequiredService<ActiveBrokerLock>(),
            sp.GetRequiredService<IOptions<BrokerOptions>>()));
        if (configuration.GetValue<bool>(BrokerOptions.Section + ":Storage:PostgreSql:MultiActive"))
        {
            services.AddSingleton(sp => new PostgreSqlNotifications(ConnectionString(configuration)!, sp.GetRequiredService<ILogger<PostgreSqlNotifications>>()));
            services.AddHostedService(sp => sp.GetRequiredService<PostgreSqlNotifications>());
            services.AddSingleton<HalfMsgBroker.Cluster.StoredSubscriptions>();
            services.AddSingleton(sp => new HalfMsgBroker.Access.UnknownKeyReads(
                sp.GetRequiredService<IOptions<HalfMsgBroker.Access.AuthOptions>>().Value.UnknownKeyReadsPerSecond, sp.GetRequiredService<TimeProvider>()));
            services.AddHostedService<HalfMsgBroker.Cluster.SharedStateSync>();
            services.AddSingleton(sp => new HalfMsgBroker.Cluster.PostgreSqlSweepLease(
                sp.GetRequiredService<NpgsqlDataSource>(),
                sp.GetRequiredService<IOptions<BrokerOptions>>().Value.Storage.PostgreSql.SweepLease,
                sp.GetRequiredService<ILogger<HalfMsgBroker.Cluster.PostgreSqlSweepLease>>()));
            services.AddSingleton<HalfMsgBroker.Cluster.ISweepLease>(sp => sp.GetRequiredService<HalfMsgBroker.Cluster.PostgreSqlSweepLease>());
            services.AddSingleton<HalfMsgBroker.Cluster.ClockOffset>();
            services.AddHostedService(sp => sp.GetRequiredService<HalfMsgBroker.Cluster.ClockOffset>());
            services.AddMultiActiveDeliveries();
        }
    }

    /// <summary>True when every broker on the database is active (<see cref="PostgreSqlOptions.MultiActive"/>).</summary>
    public static bool MultiActive(IServiceProvider services) =>
        services.GetRequiredService<IOptions<BrokerOptions>>().Value.Storage.PostgreSql.MultiActive;
}

/// <summary>What keeps a PostgreSQL broker from being ready: a lost database lock, or a database that does not answer.</summary>
internal sealed class PostgreSqlReadiness(IMessageStore store, ActiveBrokerLock? activeLock, IOptions<BrokerOptions> options)
{
    public async Task<string?> ProblemAsync(CancellationToken cancellationToken)
    {
        if (activeLock is { Lost: true }) return "the connection holding the database lock is gone, or another broker took over; the broker is stopping";
        if (store is PostgreSqlMessageStore { WriteFailure: not null }) return "a batch's commit got no answer from PostgreSQL (its outcome is unknown); the broker takes no more writes and is stopping so recovery rebuilds its state";
        return store is PostgreSqlMessageStore pg ? await pg.ProblemAsync(options.Value.Storage.PostgreSql.ReadyTimeout, cancellationToken) : null;
    }
}
