using HalfMsgBroker.Client;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

public static partial class HalfMsgServiceCollectionExtensions
{
    /// <summary>
    /// Registers an <see cref="ITransactionalProducer"/> for <paramref name="producerGroup"/> and PUTs the group
    /// once the app has started, with the check URL derived from <see cref="HalfMsgClientOptions.PublicBaseAddress"/>
    /// and the route of the app's <c>MapHalfMsgCheck</c> endpoint (written once, there).
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="producerGroup">The producer group.</param>
    /// <param name="checkTimeout">How long the broker waits for a check answer (100 ms to 60 s); null for the broker's 3 s.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddTransactionalProducer(this IHalfMsgBuilder builder, string producerGroup, TimeSpan? checkTimeout = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(producerGroup);
        return builder.AddTransactionalProducer(producerGroup, o => o.CheckTimeout = checkTimeout);
    }

    /// <summary>Registers an <see cref="ITransactionalProducer"/> with options set in code (see <see cref="TransactionalProducerOptions"/>).</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="producerGroup">The producer group.</param>
    /// <param name="configure">Sets the check path, URL or timeout.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddTransactionalProducer(this IHalfMsgBuilder builder, string producerGroup, Action<TransactionalProducerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(producerGroup);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.AddOptions<TransactionalProducerOptions>(producerGroup).Configure(o =>
        {
            o.ProducerGroup = producerGroup;
            configure(o);
        });
        return AddTransactionalProducerCore(builder, producerGroup, checkUrl: null);
    }

    /// <summary>
    /// Registers an <see cref="ITransactionalProducer"/> with <see cref="TransactionalProducerOptions"/> bound from
    /// <paramref name="configuration"/> (<c>ProducerGroup</c>, and optionally <c>CheckTimeout</c>, <c>CheckPath</c>, <c>CheckUrl</c>).
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="configuration">The producer's configuration section, e.g. <c>HalfMsg:Producer</c>.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="InvalidOperationException">The section has no <c>ProducerGroup</c>.</exception>
    public static IHalfMsgBuilder AddTransactionalProducer(this IHalfMsgBuilder builder, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configuration);
        var producerGroup = configuration[nameof(TransactionalProducerOptions.ProducerGroup)];
        if (string.IsNullOrEmpty(producerGroup))
        {
            var path = configuration is IConfigurationSection section ? section.Path + ":" : string.Empty;
            throw new InvalidOperationException($"{path}ProducerGroup is required in configuration to register a transactional producer.");
        }

        builder.Services.AddOptions<TransactionalProducerOptions>(producerGroup).Bind(configuration);
        return AddTransactionalProducerCore(builder, producerGroup, checkUrl: null);
    }

    /// <summary>
    /// Registers an <see cref="ITransactionalProducer"/> whose check endpoint is not this app's: the group is PUT
    /// with <paramref name="checkUrl"/>. For this app's own <c>MapHalfMsgCheck</c>, use the overload without a URL.
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="producerGroup">The producer group.</param>
    /// <param name="checkUrl">The absolute URL of the check endpoint.</param>
    /// <param name="checkTimeout">How long the broker waits for a check answer (100 ms to 60 s); null for the broker's 3 s.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddTransactionalProducer(this IHalfMsgBuilder builder, string producerGroup, Uri checkUrl, TimeSpan? checkTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(checkUrl);
        return builder.AddTransactionalProducer(producerGroup, o =>
        {
            o.CheckUrl = checkUrl;
            o.CheckTimeout = checkTimeout;
        });
    }

    /// <summary>Registers an <see cref="ITransactionalProducer"/> with the check URL computed once the app has started.</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="producerGroup">The producer group.</param>
    /// <param name="checkUrl">Computes the absolute check URL once the app has started.</param>
    /// <param name="checkTimeout">How long the broker waits for a check answer (100 ms to 60 s); null for the broker's 3 s.</param>
    /// <returns>The builder.</returns>
    public static IHalfMsgBuilder AddTransactionalProducer(this IHalfMsgBuilder builder, string producerGroup, Func<IServiceProvider, Uri> checkUrl, TimeSpan? checkTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(producerGroup);
        ArgumentNullException.ThrowIfNull(checkUrl);
        builder.Services.AddOptions<TransactionalProducerOptions>(producerGroup).Configure(o =>
        {
            o.ProducerGroup = producerGroup;
            o.CheckTimeout = checkTimeout;
        });
        return AddTransactionalProducerCore(builder, producerGroup, checkUrl);
    }

    /// <summary>
    /// The producer (keyed by its group, and unkeyed for the first group registered), its options' validation
    /// at start, and the PUT of its group once the app has started.
    /// </summary>
    private static IHalfMsgBuilder AddTransactionalProducerCore(IHalfMsgBuilder builder, string producerGroup, Func<IServiceProvider, Uri>? checkUrl)
    {
        var services = builder.Services;
        services.AddOptions<TransactionalProducerOptions>(producerGroup).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TransactionalProducerOptions>, TransactionalProducerOptionsValidator>());
        services.AddKeyedSingleton(producerGroup, (sp, _) =>
            new TransactionalProducer(sp.GetRequiredService<IHalfMsgClient>(), producerGroup, sp.GetService<ILogger<TransactionalProducer>>())
            {
                EndOneWay = sp.GetRequiredService<IOptionsMonitor<TransactionalProducerOptions>>().Get(producerGroup).EndOneWay,
            });
        services.AddKeyedSingleton<ITransactionalProducer>(producerGroup, (sp, key) => sp.GetRequiredKeyedService<TransactionalProducer>(key));
        services.TryAddSingleton(sp => sp.GetRequiredKeyedService<TransactionalProducer>(producerGroup));
        services.TryAddSingleton<ITransactionalProducer>(sp => sp.GetRequiredKeyedService<TransactionalProducer>(producerGroup));
        AddRegistration(services, new HalfMsgRegistration(
            $"producer group '{producerGroup}'",
            (sp, client, ct) =>
            {
                var options = sp.GetRequiredService<IOptionsMonitor<TransactionalProducerOptions>>().Get(producerGroup);
                var url = checkUrl?.Invoke(sp) ?? options.CheckUrl ?? CheckUrls.Resolve(sp, options.CheckPath);
                return client.PutProducerGroupAsync(producerGroup, new ProducerGroupRequest(url, options.CheckTimeout), ct);
            }));
        return builder;
    }
}
