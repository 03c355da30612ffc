using System.Globalization;
using System.Threading.RateLimiting;
using HalfMsgBroker.Api;
using HalfMsgBroker.Configuration;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Access;

/// <summary>Access control on ASP.NET Core's own machinery: an authentication scheme, policies, the rate limiter.</summary>
internal static class AccessHosting
{
    /// <summary>The rate-limiter policy of receive: concurrent long polls per key.</summary>
    public const string LongPollPolicy = "long-polls";

    public static void AddBrokerAccess(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<AuthOptions>()
            .Bind(builder.Configuration.GetSection("Broker:Auth"))
            .Validate(o => string.IsNullOrEmpty(o.AdminKey) || o.AdminKey.Length >= AuthOptions.MinAdminKeyLength,
                $"Broker:Auth:AdminKey must be at least {AuthOptions.MinAdminKeyLength} characters (make one with: openssl rand -base64 32)")
            .Validate(o => o.EffectiveMode != AuthMode.ApiKeys || !string.IsNullOrEmpty(o.AdminKey),
                "Broker:Auth:Mode=ApiKeys needs Broker:Auth:AdminKey, or nobody could create the first key")
            .Validate(o => o.LastUsedFlushInterval > TimeSpan.Zero && o.AuditRetention > TimeSpan.Zero && o.UnknownKeyReadsPerSecond > 0,
                "Broker:Auth:LastUsedFlushInterval, AuditRetention and UnknownKeyReadsPerSecond must be > 0")
            .ValidateOnStart();
        services.AddOptions<RateLimitOptions>()
            .Bind(builder.Configuration.GetSection("Broker:RateLimits"))
            .Validate(o => o.RequestsPerSecond is null or > 0 && o.Burst is null or > 0 && o.MaxConcurrentLongPolls > 0,
                "Broker:RateLimits:RequestsPerSecond, Burst and MaxConcurrentLongPolls must be > 0")
            .ValidateOnStart();
        services.AddOptions<QuotaOptions>()
            .Bind(builder.Configuration.GetSection("Broker:Quotas"))
            .Validate(o => o.MaxTopics > 0 && o.MaxSubscriptions > 0 && o.MaxProducerGroups > 0 && o.MaxApiKeys > 0,
                "Broker:Quotas limits must be > 0")
            .ValidateOnStart();

        services.AddSingleton<IAccessStore>(sp =>
        {
            var o = sp.GetRequiredService<IOptions<BrokerOptions>>().Value;
            if (o.Storage.Provider == StorageProvider.PostgreSql)
            {
                // The message store first: it waits for the database lock and migrates the schema, access tables included.
                sp.GetRequiredService<HalfMsgBroker.Storage.IMessageStore>();
                return new PostgreSqlAccessStore(sp.GetRequiredService<Npgsql.NpgsqlDataSource>(), sp.GetRequiredService<HalfMsgBroker.Storage.PostgreSql.ActiveBrokerLock>(), announce: o.Storage.PostgreSql.MultiActive);
            }
            var path = Path.IsPathRooted(o.DataPath) ? o.DataPath : Path.Combine(builder.Environment.ContentRootPath, o.DataPath);
            return new LiteDbAccessStore(path, o.Storage.Durability);
        });
        services.AddSingleton<ApiKeyRegistry>();
        services.AddSingleton<AuditLog>();
        services.AddSingleton<Quotas>();
        services.AddHostedService<AccessMaintenanceService>();

        services.AddAuthentication(Caller.AuthenticationScheme)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(Caller.AuthenticationScheme, null);
        services.AddAuthorization(Policies.Add);
        services.AddSingleton<IAuthorizationHandler, AccessHandler>();
        services.AddSingleton<Microsoft.AspNetCore.Authorization.IAuthorizationMiddlewareResultHandler, ProblemAuthorizationResultHandler>();

        var limits = builder.Configuration.GetSection("Broker:RateLimits").Get<RateLimitOptions>() ?? new RateLimitOptions();
        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.OnRejected = OnRejectedAsync;
            if (limits.RequestsPerSecond is { } rps)
            {
                var perPeriod = Math.Max(1, (int)Math.Ceiling(rps / 100));
                var bucket = new TokenBucketRateLimiterOptions
                {
                    TokenLimit = limits.Burst ?? Math.Max(1, (int)Math.Ceiling(rps)),
                    TokensPerPeriod = perPeriod,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(perPeriod / rps),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                };
                o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
                    http.Request.Path.StartsWithSegments("/v1", StringComparison.Ordinal)
                        ? RateLimitPartition.GetTokenBucketLimiter(PartitionOf(http), _ => bucket)
                        : RateLimitPartition.GetNoLimiter(""));
            }
            o.AddPolicy(LongPollPolicy, http => RateLimitPartition.GetConcurrencyLimiter(PartitionOf(http),
                _ => new ConcurrencyLimiterOptions { PermitLimit = limits.MaxConcurrentLongPolls, QueueLimit = 0 }));
        });
    }

    /// <summary>
    /// Authentication first, so the rate limiter can partition by key (and limits floods of bad keys by
    /// address); then authorization; the simple-request guard last, so a caller without a key is told
    /// 401 before being told about content types.
    /// </summary>
    public static void UseBrokerAccess(this WebApplication app)
    {
        var mode = app.Services.GetRequiredService<IOptions<AuthOptions>>().Value.EffectiveMode;
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("HalfMsgBroker.Access");
        if (mode == AuthMode.None)
        {
            logger.LogWarning("Broker:Auth:Mode=None: every caller may do everything, keys are not checked. Use it only on a trusted network.");
        }
        else
        {
            logger.LogInformation("Access control: {Mode} mode", mode);
        }

        app.UseAuthentication();
        app.UseRateLimiter();
        app.UseAuthorization();
        app.UseMiddleware<SimpleRequestGuard>();
    }

    /// <summary>A key's id (or the admin key), else the client's address: the unit of rate limits.</summary>
    private static string PartitionOf(HttpContext http) =>
        http.Features.Get<Caller>() is { KeyId: { } id } ? id
        : http.Features.Get<Caller>() is { Name: Caller.AdminKeyName } ? Caller.AdminKeyName
        : "ip:" + http.Connection.RemoteIpAddress;

    private static ValueTask OnRejectedAsync(OnRejectedContext context, CancellationToken cancellationToken)
    {
        var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
        context.HttpContext.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        var longPoll = context.HttpContext.GetEndpoint()?.Metadata.GetMetadata<EnableRateLimitingAttribute>()?.PolicyName == LongPollPolicy;
        var detail = longPoll
            ? "This key has as many receives open as Broker:RateLimits:MaxConcurrentLongPolls allows; wait for one to return, or use fewer pollers per key."
            : "This key (or client address) sent more requests than Broker:RateLimits:RequestsPerSecond allows; retry after the Retry-After seconds.";
        return new ValueTask(Problems.Of(429, "rate-limited", "Too many requests", detail).ExecuteAsync(context.HttpContext));
    }
}
