using HalfMsgBroker.Cluster;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// Two multi-active brokers, one of which can be made late to hear of the other's changes by holding its
/// <see cref="SharedStateSync"/> (<see cref="SyncOf"/>): what it hears stays queued until released.
/// </summary>
internal static class LateHearing
{
    /// <summary>Two multi-active brokers on a fresh database, with an admin client of each; stopped whatever the test does.</summary>
    public static async Task OnTwoBrokers(
        PostgresCluster cluster, string name, Func<string, List<BrokerFactory>, HttpClient, HttpClient, Task> test, IDictionary<string, string?>? settings = null)
    {
        var database = await cluster.CreateDatabaseAsync(name);
        var nodes = MultiActiveNodes.Start(database, 2, settings);
        try
        {
            using var one = nodes[0].CreateClient();
            using var two = nodes[1].CreateClient();
            await test(database, nodes, one, two);
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }

    public static SharedStateSync SyncOf(BrokerFactory node) => node.Services.GetServices<IHostedService>().OfType<SharedStateSync>().Single();

    public static PostgreSqlMessageStore StoreOf(BrokerFactory node) => (PostgreSqlMessageStore)node.Services.GetRequiredService<IMessageStore>();
}
