using HalfMsgBroker.Client;
using HalfMsgBroker.Client.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Telemetry;
using Refit;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>What <c>AddHalfMsgClient</c> returns: chain producers, checkers, subscriptions and consumers on it.</summary>
public interface IHalfMsgBuilder
{
    /// <summary>The service collection.</summary>
    IServiceCollection Services { get; }

    /// <summary>
    /// The HTTP client behind <see cref="IHalfMsgClient"/> (add handlers, change the primary handler). It logs
    /// nothing by default; <c>HttpClient.AddDefaultLogger()</c> brings back HttpClientFactory's per-request lines.
    /// </summary>
    IHttpClientBuilder HttpClient { get; }
}

internal sealed record HalfMsgBuilder(IServiceCollection Services, IHttpClientBuilder HttpClient) : IHalfMsgBuilder;

/// <summary>Registers the HalfMsgBroker client, its producers and its consumers.</summary>
public static partial class HalfMsgServiceCollectionExtensions
{
    /// <summary>The name of the HTTP client behind <see cref="IHalfMsgClient"/>.</summary>
    public const string HttpClientName = "HalfMsgBroker";

    /// <summary>
    /// Registers <see cref="IHalfMsgClient"/> and <see cref="HalfMsgClient"/> (singletons) with
    /// <see cref="HalfMsgClientOptions"/> bound from <paramref name="configuration"/>, e.g.
    /// <c>services.AddHalfMsgClient(builder.Configuration.GetSection("HalfMsg"))</c> reading
    /// <c>HalfMsg:BaseAddress</c>, <c>HalfMsg:ApiKey</c>, <c>HalfMsg:PublicBaseAddress</c>, …
    /// The options are validated when the host starts.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configuration">The configuration section of the options.</param>
    /// <returns>A builder for producers, checkers and consumers.</returns>
    public static IHalfMsgBuilder AddHalfMsgClient(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<HalfMsgClientOptions>().Bind(configuration);
        return AddHalfMsgClientCore(services);
    }

    /// <summary>
    /// Registers <see cref="IHalfMsgClient"/> and <see cref="HalfMsgClient"/> (singletons) with options set in code,
    /// and a resilience pipeline that retries transient failures of retry-safe calls only: sends (idempotency
    /// key / transaction id), commits, rollbacks, reads and PUTs. Receive, ack, nack, change-invisibility and
    /// redrive are never retried automatically. The options are validated when the host starts.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets <see cref="HalfMsgClientOptions.BaseAddress"/> and the rest.</param>
    /// <returns>A builder for producers, checkers and consumers.</returns>
    public static IHalfMsgBuilder AddHalfMsgClient(this IServiceCollection services, Action<HalfMsgClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<HalfMsgClientOptions>().Configure(configure);
        return AddHalfMsgClientCore(services);
    }

    private static IHalfMsgBuilder AddHalfMsgClientCore(IServiceCollection services)
    {
        services.AddOptions<HalfMsgClientOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HalfMsgClientOptions>, HalfMsgClientOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);

        var settings = new RefitSettings(SystemTextJsonContentSerializer.ForContext(HalfMsgJsonContext.Default))
        {
            ExceptionFactory = async response => response.IsSuccessStatusCode
                ? null
                : await HalfMsgException.FromResponseAsync(response).ConfigureAwait(false),
            // No answer at all is a HalfMsgException too (status 0, transient), as documented. Refit's own
            // wrapper would hold the live request, Authorization header and all, for any logger that walks
            // an exception's properties to find.
            TransportExceptionFactory = static (_, exception, cancellationToken) =>
                exception is OperationCanceledException && cancellationToken.IsCancellationRequested
                    ? exception
                    : new HalfMsgException(0, "transport", exception.Message, exception),
            ExceptionRedactor = static exception =>
            {
                if (exception.RequestMessage is { } request)
                {
                    request.Headers.Authorization = null;
                }
            },
        };

        var http = services.AddRefitGeneratedClient<IHalfMsgApi>(settings, HttpClientName)
            .ConfigureHttpClient((sp, client) =>
            {
                var options = sp.GetRequiredService<IOptions<HalfMsgClientOptions>>().Value;
                client.BaseAddress = options.BaseAddress;
                client.Timeout = Timeout.InfiniteTimeSpan; // the resilience pipeline owns timeouts
            })
            .AddHttpMessageHandler(sp => new HalfMsgRequestHandler(sp.GetRequiredService<IOptions<HalfMsgClientOptions>>().Value))
            // HttpClientFactory logs four lines per call at Information, which a long-polling consumer
            // turns into a steady stream of noise; failures surface as exceptions and the SDK's own warnings.
            // HttpClient.AddDefaultLogger() brings the lines back (docs: README, "Logging").
            .RemoveAllLoggers();

        // HttpClient's Trace logging prints request headers. .NET redacts every value by default, but an app
        // may narrow that (RedactLoggedHeaders) to debug its calls: the API key stays redacted regardless.
        services.PostConfigure<HttpClientFactoryOptions>(HttpClientName, o =>
        {
            var redact = o.ShouldRedactHeaderValue;
            o.ShouldRedactHeaderValue = header =>
                string.Equals(header, "Authorization", StringComparison.OrdinalIgnoreCase) || redact(header);
        });

        http.AddResilienceHandler("halfmsg", static (pipeline, context) =>
        {
            var options = context.ServiceProvider.GetRequiredService<IOptions<HalfMsgClientOptions>>().Value;
            pipeline.ConfigureTelemetry(QuietTelemetry(context.ServiceProvider.GetRequiredService<IOptions<TelemetryOptions>>().Value));
            pipeline.AddTimeout(options.TotalTimeout);
            if (options.MaxRetryAttempts > 0)
            {
                pipeline.AddRetry(new HttpRetryStrategyOptions
                {
                    MaxRetryAttempts = options.MaxRetryAttempts,
                    Delay = options.RetryDelay,
                    BackoffType = DelayBackoffType.Exponential,
                    UseJitter = true,
                    ShouldHandle = args => ValueTask.FromResult(
                        IsRetrySafe(args.Context)
                        && !args.Context.CancellationToken.IsCancellationRequested
                        && HttpClientResiliencePredicates.IsTransient(args.Outcome)),
                });
            }

            pipeline.AddTimeout(options.AttemptTimeout);
        });

        services.TryAddSingleton(sp => new HalfMsgClient(
            sp.GetRequiredService<IHalfMsgApi>(),
            sp.GetRequiredService<IOptions<HalfMsgClientOptions>>(),
            sp.GetService<ILogger<HalfMsgClient>>()));
        services.TryAddSingleton<IHalfMsgClient>(sp => sp.GetRequiredService<HalfMsgClient>());
        return new HalfMsgBuilder(services, http);
    }

    /// <summary>
    /// The app's Polly telemetry for this pipeline, with Information events (an "execution attempt" line for
    /// every successful call, long polls included) lowered to Debug. Retries (Warning) and timeouts (Error)
    /// keep their level; an app that wants the lines sets the Polly category to Debug.
    /// </summary>
    private static TelemetryOptions QuietTelemetry(TelemetryOptions appTelemetry)
    {
        var telemetry = new TelemetryOptions(appTelemetry);
        var appSeverity = appTelemetry.SeverityProvider;
        telemetry.SeverityProvider = args =>
        {
            var severity = appSeverity?.Invoke(args) ?? args.Event.Severity;
            return severity == ResilienceEventSeverity.Information ? ResilienceEventSeverity.Debug : severity;
        };
        return telemetry;
    }

    private static bool IsRetrySafe(ResilienceContext context) =>
        context.GetRequestMessage() is { } request
        && request.Options.TryGetValue(HalfMsgRequestHandler.RetrySafe, out var safe)
        && safe;

    /// <summary>Registers the app's <see cref="ITransactionChecker"/> (scoped), used by <c>MapHalfMsgCheck</c>.</summary>
    /// <typeparam name="TChecker">The checker.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddTransactionChecker<TChecker>(this IHalfMsgBuilder builder)
        where TChecker : class, ITransactionChecker
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddScoped<ITransactionChecker, TChecker>();
        return builder;
    }

    /// <summary>PUTs a push subscription once the app has started (map its endpoint with <c>MapHalfMsgPush</c>).</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="pushUrl">Computes the absolute push URL once the app has started.</param>
    /// <param name="subscription">Tag filter, attempts, exhausted action, push timeout (its push URL is replaced).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A value of <paramref name="subscription"/> is outside the broker's limits.</exception>
    public static IHalfMsgBuilder AddPushSubscription(this IHalfMsgBuilder builder, string consumerGroup, string topic, Func<IServiceProvider, Uri> pushUrl, SubscriptionRequest? subscription = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentNullException.ThrowIfNull(pushUrl);
        subscription ??= new SubscriptionRequest();
        HalfMsgClient.CheckSubscription(subscription, nameof(subscription));
        AddRegistration(builder.Services, new HalfMsgRegistration(
            $"push subscription '{consumerGroup}' on '{topic}'",
            (sp, client, ct) => client.PutSubscriptionAsync(
                consumerGroup,
                topic,
                subscription with { Push = new PushEndpoint(pushUrl(sp), subscription.Push?.Timeout) },
                ct)));
        return builder;
    }

    /// <summary>PUTs a push subscription once the app has started.</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="pushUrl">The absolute push URL.</param>
    /// <param name="subscription">Tag filter, attempts, exhausted action, push timeout.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddPushSubscription(this IHalfMsgBuilder builder, string consumerGroup, string topic, Uri pushUrl, SubscriptionRequest? subscription = null)
    {
        ArgumentNullException.ThrowIfNull(pushUrl);
        return builder.AddPushSubscription(consumerGroup, topic, _ => pushUrl, subscription);
    }

    private static void AddRegistration(IServiceCollection services, HalfMsgRegistration registration)
    {
        services.AddSingleton(registration);
        if (!services.Any(d => d.ServiceType == typeof(HalfMsgRegistrationService)))
        {
            services.AddSingleton<HalfMsgRegistrationService>();
            services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<HalfMsgRegistrationService>());
            services.AddSingleton<IHalfMsgRegistrationStatus>(sp => sp.GetRequiredService<HalfMsgRegistrationService>());
        }
    }
}
