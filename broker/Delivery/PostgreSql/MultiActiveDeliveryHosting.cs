using HalfMsgBroker.Storage.PostgreSql;
using Npgsql;

namespace HalfMsgBroker.Delivery.PostgreSql;

/// <summary>With <c>MultiActive</c>, the delivery ports are the shared rows instead of this process's queues.</summary>
internal static class MultiActiveDeliveryHosting
{
    public static void AddMultiActiveDeliveries(this IServiceCollection services)
    {
        services.AddSingleton(sp => new DeliveryRows(sp.GetRequiredService<NpgsqlDataSource>()));
        services.AddSingleton<DeliveryClaims>();
        services.AddSingleton<LeaseExpiry>();
        services.AddSingleton<PostgreSqlLiveDeliveries>();
        services.AddSingleton<ILiveDeliveries>(sp => sp.GetRequiredService<PostgreSqlLiveDeliveries>());
        services.AddSingleton<IDeliveryFigures>(sp => sp.GetRequiredService<PostgreSqlLiveDeliveries>());
        services.AddSingleton<IPullDeliveries, PostgreSqlPullDeliveries>();
        services.AddSingleton<IPushDeliveries, PostgreSqlPushDeliveries>();
        services.AddSingleton<DeliveryWakeups>();
        services.AddHostedService(sp => sp.GetRequiredService<DeliveryWakeups>());
    }
}
