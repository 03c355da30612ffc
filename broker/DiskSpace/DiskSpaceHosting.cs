using HalfMsgBroker.Hosting;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace HalfMsgBroker.DiskSpace;

internal static class DiskSpaceHosting
{
    /// <summary>The free-space reading (replaceable), its monitor, and its gauges.</summary>
    public static IServiceCollection AddDiskSpaceWatch(this IServiceCollection services)
    {
        services.TryAddSingleton<IFreeSpace, DriveFreeSpace>();
        services.AddSingleton(sp =>
        {
            var monitor = ActivatorUtilities.CreateInstance<DiskSpaceMonitor>(sp);
            BrokerGauges.ObserveDiskSpace(sp.GetRequiredService<BrokerMetrics>().Meter, monitor);
            return monitor;
        });
        services.AddHostedService(sp => sp.GetRequiredService<DiskSpaceMonitor>());
        return services;
    }

    /// <summary>Sends and half messages answer 507 while the disk is below the limit.</summary>
    public static RouteHandlerBuilder RefusedWhenDiskLow(this RouteHandlerBuilder endpoint) =>
        endpoint.AddEndpointFilter<DiskSpaceGate>().ProducesProblem(StatusCodes.Status507InsufficientStorage);
}
