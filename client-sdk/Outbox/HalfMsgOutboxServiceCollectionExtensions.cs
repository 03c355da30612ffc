using System.Data.Common;
using HalfMsgBroker.Client;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the outbox (local message table) and its relay.</summary>
public static class HalfMsgOutboxServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="IOutbox"/> (a singleton) and the relay that sends its rows (a hosted service),
    /// with <see cref="HalfMsgOutboxOptions"/> bound from <c>HalfMsg:Outbox</c>, then
    /// <paramref name="configure"/>, and validated when the host starts. The relay sends through the
    /// client of <c>AddHalfMsgClient</c>, which must be registered too.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="createConnection">Makes a new, unopened connection to the database that holds the table (the relay opens and disposes it).</param>
    /// <param name="configure">Changes the options after configuration is bound; null for none.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddHalfMsgOutbox(this IServiceCollection services, Func<IServiceProvider, DbConnection> createConnection, Action<HalfMsgOutboxOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(createConnection);
        var options = services.AddOptions<HalfMsgOutboxOptions>().BindConfiguration(HalfMsgOutboxOptions.Section);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HalfMsgOutboxOptions>, OutboxOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<OutboxSignal>();
        services.TryAddSingleton<IOutbox>(sp =>
        {
            var o = sp.GetRequiredService<IOptions<HalfMsgOutboxOptions>>().Value;
            return new DbOutbox(
                new OutboxTable(o.TableName, o.ParameterPrefix),
                sp.GetRequiredService<IOptions<HalfMsgClientOptions>>().Value.JsonSerializerOptions,
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<OutboxSignal>());
        });
        services.AddSingleton<IHostedService>(sp => new OutboxRelay(
            sp.GetService<IHalfMsgApi>() ?? throw new InvalidOperationException("AddHalfMsgOutbox sends through the HalfMsgBroker client: call services.AddHalfMsgClient(…) too."),
            () => createConnection(sp),
            sp.GetRequiredService<IOptions<HalfMsgOutboxOptions>>().Value,
            sp.GetRequiredService<OutboxSignal>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<OutboxRelay>>()));
        return services;
    }

    private sealed class OutboxOptionsValidator : IValidateOptions<HalfMsgOutboxOptions>
    {
        public ValidateOptionsResult Validate(string? name, HalfMsgOutboxOptions options) =>
            options.Problems() is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
    }
}
