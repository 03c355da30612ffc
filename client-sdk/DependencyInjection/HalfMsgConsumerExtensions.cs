using HalfMsgBroker.Client;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

public static partial class HalfMsgServiceCollectionExtensions
{
    /// <summary>
    /// Runs a pull consumer in the background: long-polls <paramref name="topic"/> for
    /// <paramref name="consumerGroup"/>, runs <typeparamref name="THandler"/> (resolved per message from a scope)
    /// with bounded concurrency, extends invisibility while it works, acks on success and nacks when it throws.
    /// </summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <typeparam name="THandler">The handler: a class implementing <see cref="IHalfMsgHandler{T}"/> (registered scoped when it is not registered yet).</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="configure">Concurrency, invisibility, subscription; validated when the host starts.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddPullConsumer<T, THandler>(this IHalfMsgBuilder builder, string consumerGroup, string topic, Action<PullConsumerOptions>? configure = null)
        where THandler : class, IHalfMsgHandler<T>
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddScoped<THandler>();
        return builder.AddPullConsumer<T>(consumerGroup, topic, HandlerDelegate<T, THandler>(), configure);
    }

    /// <summary>
    /// Runs a pull consumer in the background (see the other overload) with <see cref="PullConsumerOptions"/>
    /// bound from <paramref name="configuration"/>: <c>ConsumerGroup</c>, <c>Topic</c>, <c>MaxConcurrency</c>,
    /// <c>InvisibleFor</c>, <c>WaitTime</c>, <c>RetryAfter</c>, <c>TagFilter</c>, <c>MaxAttempts</c>, <c>OnExhausted</c>, …
    /// </summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <typeparam name="THandler">The handler.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="configuration">The consumer's configuration section, e.g. <c>HalfMsg:Consumers:Notifications</c>.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddPullConsumer<T, THandler>(this IHalfMsgBuilder builder, IConfiguration configuration)
        where THandler : class, IHalfMsgHandler<T>
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configuration);
        builder.Services.TryAddScoped<THandler>();
        var name = configuration is IConfigurationSection section ? section.Path : "pull consumer " + typeof(THandler).Name;
        builder.Services.AddOptions<PullConsumerOptions>(name).Bind(configuration);
        return AddPullConsumerCore(builder, name, HandlerDelegate<T, THandler>());
    }

    /// <summary>Runs a pull consumer in the background with a delegate handler (given a scoped service provider).</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="consumerGroup">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="handler">Handles one delivery; throwing nacks it.</param>
    /// <param name="configure">Concurrency, invisibility, subscription; validated when the host starts.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddPullConsumer<T>(this IHalfMsgBuilder builder, string consumerGroup, string topic, Func<HalfMsgDelivery<T>, IServiceProvider, CancellationToken, Task> handler, Action<PullConsumerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(consumerGroup);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentNullException.ThrowIfNull(handler);
        var name = consumerGroup + "/" + topic;
        builder.Services.AddOptions<PullConsumerOptions>(name).Configure(o =>
        {
            o.ConsumerGroup = consumerGroup;
            o.Topic = topic;
            configure?.Invoke(o);
        });
        return AddPullConsumerCore(builder, name, handler);
    }

    private static Func<HalfMsgDelivery<T>, IServiceProvider, CancellationToken, Task> HandlerDelegate<T, THandler>()
        where THandler : class, IHalfMsgHandler<T> =>
        (delivery, sp, ct) => sp.GetRequiredService<THandler>().HandleAsync(delivery, ct);

    private static IHalfMsgBuilder AddPullConsumerCore<T>(IHalfMsgBuilder builder, string name, Func<HalfMsgDelivery<T>, IServiceProvider, CancellationToken, Task> handler)
    {
        builder.Services.AddOptions<PullConsumerOptions>(name).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PullConsumerOptions>, PullConsumerOptionsValidator>());
        builder.Services.AddSingleton<IHostedService>(sp => new PullConsumerService<T>(
            sp.GetRequiredService<IHalfMsgClient>(),
            sp.GetRequiredService<IServiceScopeFactory>(),
            handler,
            sp.GetRequiredService<IOptionsMonitor<PullConsumerOptions>>().Get(name),
            sp.GetRequiredService<ILogger<PullConsumerService<T>>>()));
        return builder;
    }
}
