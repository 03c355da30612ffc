namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// The payloads of <c>halfmsg_config</c>, the channel on which many active brokers announce a configuration change
/// (sent in the change's own transaction, so only a committed change is heard): a kind and the item's key, one line
/// each. Names never hold a line break (<c>Names.IsValidName</c>), and an API key id is made by the broker.
/// </summary>
internal static class ConfigChange
{
    public const string Channel = "halfmsg_config";

    public const string SubscriptionKind = "subscription";
    public const string ProducerGroupKind = "producer-group";
    public const string ApiKeyKind = "api-key";

    public static string Subscription(string group, string topic) => $"{SubscriptionKind}\n{group}\n{topic}";

    public static string ProducerGroup(string name) => $"{ProducerGroupKind}\n{name}";

    public static string ApiKey(string id) => $"{ApiKeyKind}\n{id}";

    /// <summary>The kind and the key's parts; an empty kind for a payload this broker does not know (a newer broker's).</summary>
    public static (string Kind, string[] Key) Parse(string payload)
    {
        var parts = payload.Split('\n');
        return parts.Length >= 2 ? (parts[0], parts[1..]) : ("", []);
    }
}
