using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>Brokers in-process on one database, every one active (<c>Broker:Storage:PostgreSql:MultiActive</c>).</summary>
internal static class MultiActiveNodes
{
    public static BrokerFactory Node(string database, IDictionary<string, string?>? settings = null)
    {
        var all = new Dictionary<string, string?>
        {
            ["Broker:Storage:Provider"] = "PostgreSql",
            ["ConnectionStrings:HalfMsg"] = database,
            ["Broker:Storage:PostgreSql:MultiActive"] = "true",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>()) all[key] = value;
        return new BrokerFactory(all);
    }

    /// <summary><paramref name="count"/> nodes, started one after the other (the first migrates the schema).</summary>
    public static List<BrokerFactory> Start(string database, int count, IDictionary<string, string?>? settings = null)
    {
        var nodes = new List<BrokerFactory>();
        for (var i = 0; i < count; i++)
        {
            var node = Node(database, settings);
            _ = node.Services; // starts the host
            nodes.Add(node);
        }
        return nodes;
    }

    public static async Task DisposeAll(IEnumerable<BrokerFactory> nodes)
    {
        foreach (var node in nodes) await node.DisposeAsync();
    }
}
