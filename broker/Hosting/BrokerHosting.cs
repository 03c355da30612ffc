using HalfMsgBroker.Access;
using HalfMsgBroker.Api;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.OperatorConsole;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.DiskSpace;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Outbound;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Transactions;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Hosting;

public static class BrokerHosting
{
    /// <summary>Registers the broker: options, storage, the writer, background services, HTTP plumbing.</summary>
    public static WebApplicationBuilder AddHalfMsgBroker(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<BrokerOptions>()
            // Broker:Retention has a value and children (Messages, DeadLetters); the binder takes only the children.
            .Configure<IConfiguration>((o, config) => o.Retention = config.GetValue<TimeSpan?>(BrokerOptions.Section + ":Retention") ?? o.Retention)
            .Bind(builder.Configuration.GetSection(BrokerOptions.Section))
            .Validate(o => o.MaxMessageBytes >= 1024, "Broker:MaxMessageBytes must be at least 1024")
            .Validate(o => o.Transactions.MaxChecks >= 1, "Broker:Transactions:MaxChecks must be at least 1")
            .Validate(o => o.Transactions.ProducerGroupMaxChecksInFlight is >= 1 and <= ProducerGroupLimits.MaxInFlight
                    && o.Transactions.ProducerGroupMaxChecksPerSecond is >= 0 and <= ProducerGroupLimits.MaxPerSecond,
                $"Broker:Transactions:ProducerGroupMaxChecksInFlight must be 1-{ProducerGroupLimits.MaxInFlight} and ProducerGroupMaxChecksPerSecond 0-{ProducerGroupLimits.MaxPerSecond}")
            .Validate(o => o.Transactions.CheckAfter >= TimeSpan.Zero && o.Transactions.CheckInterval > TimeSpan.Zero,
                "Broker:Transactions:CheckAfter must be >= 0 and CheckInterval > 0")
            .Validate(o => o.Delivery.RetryBackoff.TrueForAll(b => b > TimeSpan.Zero), "Broker:Delivery:RetryBackoff entries must be > 0")
            .Validate(o => o.Retention > TimeSpan.Zero && o.RetentionSweepInterval > TimeSpan.Zero, "Broker:Retention and RetentionSweepInterval must be > 0")
            .Validate(o => o.DeadLetterRetention > TimeSpan.Zero, "Broker:Retention:DeadLetters must be > 0")
            .Validate(o => o.Storage.PostgreSql.LockCheckInterval > TimeSpan.Zero && o.Storage.PostgreSql.ReadyTimeout > TimeSpan.Zero && o.Storage.PostgreSql.SweepLease > TimeSpan.Zero
                    && o.Storage.PostgreSql.ClockCheckInterval > TimeSpan.Zero && o.Storage.PostgreSql.MaxClockOffset > TimeSpan.Zero,
                "Broker:Storage:PostgreSql:LockCheckInterval, ReadyTimeout, SweepLease, ClockCheckInterval and MaxClockOffset must be > 0")
            .Validate(o => o.Storage.CheckpointPages >= 1,
                "Broker:Storage:CheckpointPages must be at least 1 (0 would stop LiteDB from ever copying its log into the data file)")
            .Validate(o => o.Storage.ApplyDelay >= TimeSpan.Zero && o.Storage.ApplyDelay <= TimeSpan.FromSeconds(10),
                "Broker:Storage:ApplyDelay must be between 0 and 10 seconds")
            .Validate(o => o.Signing.RotationOverlap >= TimeSpan.Zero, "Broker:Signing:RotationOverlap must be >= 0")
            .Validate<IConfiguration>((o, config) => o.Storage.Provider != StorageProvider.PostgreSql || !string.IsNullOrWhiteSpace(PostgreSqlHosting.ConnectionString(config)),
                "Broker:Storage:Provider=PostgreSql needs the connection string ConnectionStrings:HalfMsg (an Npgsql connection string, e.g. Host=db;Database=halfmsg;Username=broker;Password=…)")
            .Validate(o => o.Storage.MinFreeBytes >= 0 && o.Storage.FreeSpaceCheckInterval > TimeSpan.Zero,
                "Broker:Storage:MinFreeBytes must be >= 0 (0: no check) and FreeSpaceCheckInterval > 0")
            .ValidateOnStart();

        // Per-request framework logs cost more than the request on a hot broker; configuration can still turn them on.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning);

        var maxBody = builder.Configuration.GetValue<long?>("Broker:MaxMessageBytes") ?? new BrokerOptions().MaxMessageBytes;
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = maxBody + 1);

        services.TryAddSingleton(TimeProvider.System);
        if (builder.Configuration.GetValue<StorageProvider>(BrokerOptions.Section + ":Storage:Provider") == StorageProvider.PostgreSql)
        {
            services.AddPostgreSqlStorage(builder.Configuration);
        }
        else services.AddSingleton<IMessageStore>(sp =>
        {
            var o = sp.GetRequiredService<IOptions<BrokerOptions>>().Value;
            var path = Path.IsPathRooted(o.DataPath) ? o.DataPath : Path.Combine(builder.Environment.ContentRootPath, o.DataPath);
            var logger = sp.GetRequiredService<ILogger<JournaledMessageStore>>();
            JournalReplay.Preflight(path, Path.Combine(path, "journal"));
            return new JournaledMessageStore(
                new LiteDbMessageStore(path, o.Storage.Durability, o.Storage.CheckpointPages, notice => logger.LogWarning("{Notice}", notice)),
                Path.Combine(path, "journal"),
                o.Storage,
                e => logger.LogError(e, "Applying journaled changes to LiteDB failed; retrying (the journal keeps them)"),
                logger,
                sp.GetService<IJournalFiles>(),
                e =>
                {
                    logger.LogCritical(e, "A journal write or fsync failed: the broker takes no more writes and stops; restart it to replay the journal");
                    sp.GetRequiredService<IHostApplicationLifetime>().StopApplication();
                },
                metrics: sp.GetRequiredService<BrokerMetrics>());
        });
        services.AddStorePorts();
        services.TryAddSingleton<HalfMsgBroker.Cluster.ISweepLease, HalfMsgBroker.Cluster.SoleSweeper>();
        services.AddSingleton(sp => new ReceiptHandles(sp.GetRequiredService<IReceiptKeySource>().ReceiptKey()));
        services.AddSingleton<StoreWriter>();
        services.AddSingleton<DeliveryRegistry>();
        services.AddSingleton(sp => new SubscriptionLookup(sp.GetRequiredService<DeliveryRegistry>(), sp.GetService<HalfMsgBroker.Cluster.StoredSubscriptions>()));
        // This process's queues, unless the storage provider keeps deliveries itself (PostgreSQL with MultiActive).
        services.TryAddSingleton<ILiveDeliveries, InMemoryLiveDeliveries>();
        services.TryAddSingleton<IPullDeliveries, InMemoryPullDeliveries>();
        services.TryAddSingleton<IPushDeliveries, InMemoryPushDeliveries>();
        services.TryAddSingleton<IDeliveryFigures, InMemoryDeliveryFigures>();
        services.AddSingleton<IDeliveryRecorder, DeliveryRecorder>();
        services.AddSingleton<CheckSchedule>();
        services.AddSingleton<OutboundHttp>();
        services.AddSingleton<BrokerReadiness>();
        OutboundHttp.Register(services);

        // Recovery first: hosted services start in order, and the others need the rebuilt state.
        services.AddHostedService<Recovery>();
        services.AddSingleton<DueScheduler>();
        services.AddHostedService(sp => sp.GetRequiredService<DueScheduler>());
        services.AddHostedService<CheckBackService>();
        services.AddHostedService<PushDeliveryService>();
        services.AddHostedService<RetentionService>();
        services.AddDiskSpaceWatch();

        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, BrokerJsonContext.Default));
        services.AddProblemDetails(o => o.CustomizeProblemDetails = ctx =>
        {
            var status = ctx.ProblemDetails.Status ?? ctx.HttpContext.Response.StatusCode;
            // The broker's own problems carry a code and a detail written for them; the rest are the framework's.
            if (ctx.ProblemDetails.Extensions.ContainsKey("code")) return;
            var code = Problems.CodeForStatus(status);
            ctx.ProblemDetails.Extensions["code"] = code;
            ctx.ProblemDetails.Type = Problems.TypeBase + code;
            if (ctx.Exception is StoreRefusedInputException or StoreOutcomeUnknownException)
            {
                // Written for the caller: what happened to the change and what to do.
                ctx.ProblemDetails.Detail = ctx.Exception.Message;
            }
            else if (status == StatusCodes.Status503ServiceUnavailable)
            {
                ctx.ProblemDetails.Detail = "The broker's storage is not answering queries now; nothing was changed by this request. Retry shortly; the broker log says why.";
            }
            else if (status >= 500)
            {
                ctx.ProblemDetails.Detail = "The broker hit an unexpected error; nothing was changed by this request. See the broker log.";
            }
            ctx.ProblemDetails.Extensions.Remove("exception");
        });
        builder.AddBrokerAccess();
        services.AddHealthChecks().AddCheck<BrokerReadiness>("ready", tags: ["ready"]);
        services.AddOpenApi(o => o.AddDocumentTransformer<BearerSecurityScheme>());
        builder.AddBrokerTelemetry();
        builder.AddOperatorConsole();
        builder.AddBrokerLogging();
        return builder;
    }

    /// <summary>Maps the HTTP API, health and OpenAPI endpoints.</summary>
    public static WebApplication MapHalfMsgBroker(this WebApplication app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = e => e switch
            {
                BadHttpRequestException bad => bad.StatusCode,
                StoreUnavailableException or StoreOutcomeUnknownException or StoreConflictException => StatusCodes.Status503ServiceUnavailable,
                StoreRefusedInputException => StatusCodes.Status400BadRequest,
                // A request that races the broker's shutdown: its services are being disposed under it.
                ObjectDisposedException => StatusCodes.Status503ServiceUnavailable,
                _ => StatusCodes.Status500InternalServerError,
            },
            SuppressDiagnosticsCallback = ctx => ctx.Exception is BadHttpRequestException or StoreRefusedInputException,
        });
        app.UseStatusCodePages();
        app.UseBrokerAccess();
        app.UseBrokerSpans();

        app.MapProducerApi();
        app.MapSubscriptionApi();
        app.MapPullApi();
        app.MapDeadLetterApi();
        app.MapReplayApi();
        app.MapLookupApi();
        app.MapAccessApi();

        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false }).AllowAnonymous();
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready"), ResponseWriter = ReadinessResponse.WriteAsync })
            .AllowAnonymous();
        app.MapOpenApi().AllowAnonymous();
        app.MapBrokerTelemetry();
        app.MapOperatorConsole();
        return app;
    }
}
