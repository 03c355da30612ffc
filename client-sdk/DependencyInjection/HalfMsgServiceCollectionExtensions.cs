using HalfMsgBroker.Client;
using HalfMsgBroker.Client.Http;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Refit;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>What <c>AddHalfMsgClient</c> returns: chain producers, checkers, subscriptions and consumers on it.</summary>
public interface IHalfMsgBuilder
{
    /// <summary>The service collection.</summary>
    IServiceCollection Services { get; }

    /// <summary>The HTTP client behind <see cref="IHalfMsgApi"/> (add handlers, change the primary handler).</summary>
    IHttpClientBuilder HttpClient { get; }
}

internal sealed record HalfMsgBuilder(IServiceCollection Services, IHttpClientBuilder HttpClient) : IHalfMsgBuilder;

/// <summary>Registers the HalfMsgBroker client.</summary>
public static class HalfMsgServiceCollectionExtensions
{
    /// <summary>The name of the HTTP client behind <see cref="IHalfMsgApi"/>.</summary>
    public const string HttpClientName = "HalfMsgBroker";

    /// <summary>
    /// Registers <see cref="IHalfMsgApi"/> (a Refit client on <see cref="IHttpClientFactory"/>),
    /// <see cref="HalfMsgClient"/>, and a resilience pipeline that retries transient failures of
    /// retry-safe calls only: sends (idempotency key / transaction id), commits, rollbacks, reads and PUTs.
    /// Receive, ack, nack, change-invisibility and redrive are never retried automatically.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets <see cref="HalfMsgClientOptions.BaseAddress"/> and the rest.</param>
    /// <returns>A builder for producers, checkers and consumers.</returns>
    public static IHalfMsgBuilder AddHalfMsgClient(this IServiceCollection services, Action<HalfMsgClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<HalfMsgClientOptions>()
            .Configure(configure)
            .Validate(o => o.BaseAddress is { IsAbsoluteUri: true }, "HalfMsgClientOptions.BaseAddress must be an absolute URI.")
            .Validate(o => o.AttemptTimeout > TimeSpan.FromSeconds(30), "HalfMsgClientOptions.AttemptTimeout must exceed the longest long poll (30 s).")
            .Validate(o => o.TotalTimeout >= o.AttemptTimeout, "HalfMsgClientOptions.TotalTimeout must be at least AttemptTimeout.")
            .Validate(o => o.MaxRetryAttempts >= 0, "HalfMsgClientOptions.MaxRetryAttempts must not be negative.")
            .Validate(o => o.ApiKeyIsWellFormed, "HalfMsgClientOptions.ApiKey must be the key exactly as the broker issued it: visible ASCII, without spaces or line breaks (a key read from a file may end in a newline).");
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
            .AddHttpMessageHandler(sp => new HalfMsgRequestHandler(sp.GetRequiredService<IOptions<HalfMsgClientOptions>>().Value));

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

        services.TryAddSingleton<HalfMsgClient>();
        return new HalfMsgBuilder(services, http);
    }

    private static bool IsRetrySafe(ResilienceContext context) =>
        context.GetRequestMessage() is { } request
        && request.Options.TryGetValue(HalfMsgRequestHandler.RetrySafe, out var safe)
        && safe;

    /// <summary>
    /// Registers a <see cref="TransactionalProducer"/> for <paramref name="producerGroup"/> (also as a keyed
    /// service under the group name) and PUTs the group with its check URL once the app has started.
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="producerGroup">The producer group.</param>
    /// <param name="checkUrl">The absolute URL of this app's check endpoint (see <c>MapHalfMsgCheck</c>).</param>
    /// <param name="checkTimeout">How long the broker waits for a check answer (default 3 s).</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddTransactionalProducer(this IHalfMsgBuilder builder, string producerGroup, Uri checkUrl, TimeSpan? checkTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(checkUrl);
        return builder.AddTransactionalProducer(producerGroup, _ => checkUrl, checkTimeout);
    }

    /// <summary>
    /// Registers a <see cref="TransactionalProducer"/> for <paramref name="producerGroup"/>, with the check URL
    /// computed after start-up (e.g. from the server's bound address).
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="producerGroup">The producer group.</param>
    /// <param name="checkUrl">Computes the absolute check URL once the app has started.</param>
    /// <param name="checkTimeout">How long the broker waits for a check answer (default 3 s).</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddTransactionalProducer(this IHalfMsgBuilder builder, string producerGroup, Func<IServiceProvider, Uri> checkUrl, TimeSpan? checkTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(producerGroup);
        ArgumentNullException.ThrowIfNull(checkUrl);
        var services = builder.Services;
        services.AddKeyedSingleton(producerGroup, (sp, _) =>
            new TransactionalProducer(sp.GetRequiredService<HalfMsgClient>(), producerGroup, sp.GetService<ILogger<TransactionalProducer>>()));
        services.TryAddSingleton(sp => sp.GetRequiredKeyedService<TransactionalProducer>(producerGroup));
        int? timeoutMs = checkTimeout is { } t ? (int)t.TotalMilliseconds : null;
        AddRegistration(services, new HalfMsgRegistration(
            $"producer group '{producerGroup}'",
            (sp, api, ct) => api.PutProducerGroupAsync(producerGroup, new ProducerGroupRequest(checkUrl(sp), timeoutMs), ct)));
        return builder;
    }

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
    /// <param name="subscription">Tag filter, attempts, exhausted action, timeout (its <c>Push</c> is replaced).</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddPushSubscription(this IHalfMsgBuilder builder, string consumerGroup, string topic, Func<IServiceProvider, Uri> pushUrl, SubscriptionRequest? subscription = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentNullException.ThrowIfNull(pushUrl);
        subscription ??= new SubscriptionRequest();
        AddRegistration(builder.Services, new HalfMsgRegistration(
            $"push subscription '{consumerGroup}' on '{topic}'",
            (sp, api, ct) => api.PutSubscriptionAsync(
                consumerGroup,
                topic,
                subscription with { Push = new PushEndpoint(pushUrl(sp), subscription.Push?.TimeoutMs) },
                ct)));
        return builder;
    }

    /// <summary>PUTs a push subscription once the app has started.</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="pushUrl">The absolute push URL.</param>
    /// <param name="subscription">Tag filter, attempts, exhausted action, timeout.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddPushSubscription(this IHalfMsgBuilder builder, string consumerGroup, string topic, Uri pushUrl, SubscriptionRequest? subscription = null)
    {
        ArgumentNullException.ThrowIfNull(pushUrl);
        return builder.AddPushSubscription(consumerGroup, topic, _ => pushUrl, subscription);
    }

    /// <summary>
    /// Runs a pull consumer in the background: long-polls <paramref name="topic"/> for
    /// <paramref name="consumerGroup"/>, runs <typeparamref name="THandler"/> (resolved per message from a scope)
    /// with bounded concurrency, extends invisibility while it works, acks on success and nacks when it throws.
    /// </summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <typeparam name="THandler">The handler.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="configure">Concurrency, invisibility, subscription.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddPullConsumer<T, THandler>(this IHalfMsgBuilder builder, string consumerGroup, string topic, Action<PullConsumerOptions>? configure = null)
        where THandler : class, IHalfMsgHandler<T>
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddScoped<THandler>();
        return builder.AddPullConsumer<T>(
            consumerGroup,
            topic,
            (delivery, sp, ct) => sp.GetRequiredService<THandler>().HandleAsync(delivery, ct),
            configure);
    }

    /// <summary>Runs a pull consumer in the background with a delegate handler (given a scoped service provider).</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="handler">Handles one delivery; throwing nacks it.</param>
    /// <param name="configure">Concurrency, invisibility, subscription.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddPullConsumer<T>(this IHalfMsgBuilder builder, string consumerGroup, string topic, Func<HalfMsgDelivery<T>, IServiceProvider, CancellationToken, Task> handler, Action<PullConsumerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentNullException.ThrowIfNull(handler);
        var options = new PullConsumerOptions();
        configure?.Invoke(options);
        options.Validate();
        builder.Services.AddSingleton<IHostedService>(sp => new PullConsumerService<T>(
            sp.GetRequiredService<HalfMsgClient>(),
            sp.GetRequiredService<IServiceScopeFactory>(),
            consumerGroup,
            topic,
            handler,
            options,
            sp.GetRequiredService<ILogger<PullConsumerService<T>>>()));
        return builder;
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
