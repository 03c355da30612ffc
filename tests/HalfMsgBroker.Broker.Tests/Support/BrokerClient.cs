using System.Text.Json.Nodes;

namespace HalfMsgBroker.Tests.Support;

/// <summary>The broker's verbs as one-liners for tests.</summary>
public static class BrokerClient
{
    public static async Task<string> SendHalf(this HttpClient c, string topic, string transactionId, object? body = null, string group = "order-service", object? extra = null)
    {
        var payload = new JsonObject
        {
            ["producerGroup"] = group,
            ["transactionId"] = transactionId,
            ["body"] = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(body ?? new { orderId = transactionId })),
        };
        if (extra is not null)
        {
            foreach (var (k, v) in JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(extra))!.AsObject()) payload[k] = v?.DeepClone();
        }
        var answer = await c.Post($"/v1/topics/{topic}/half-messages", payload);
        Assert.True(answer.Status == System.Net.HttpStatusCode.Created, answer.ToString());
        return answer.Json["messageId"]!.GetValue<string>();
    }

    public static async Task<string> Send(this HttpClient c, string topic, object? body = null, string? tag = null, int? delaySeconds = null)
    {
        var answer = await c.Post($"/v1/topics/{topic}/messages", new { body = body ?? new { n = 1 }, tag, delaySeconds });
        Assert.True(answer.Status == System.Net.HttpStatusCode.Created, answer.ToString());
        return answer.Json["messageId"]!.GetValue<string>();
    }

    public static async Task Subscribe(this HttpClient c, string group, string topic, object? body = null)
    {
        var answer = await c.Put($"/v1/consumer-groups/{group}/subscriptions/{topic}", body ?? new { });
        Assert.True(answer.Status is System.Net.HttpStatusCode.Created or System.Net.HttpStatusCode.OK, answer.ToString());
    }

    public static async Task<JsonArray> Receive(this HttpClient c, string group, string topic, int max = 16, int wait = 0, int invisible = 30)
    {
        var answer = await c.Post($"/v1/consumer-groups/{group}/topics/{topic}/receive", new { maxMessages = max, waitSeconds = wait, invisibleSeconds = invisible });
        Assert.True(answer.Status == System.Net.HttpStatusCode.OK, answer.ToString());
        return answer.Json["messages"]!.AsArray();
    }

    public static async Task<Http.Answer> Ack(this HttpClient c, string group, params string[] handles) =>
        await c.Post($"/v1/consumer-groups/{group}/ack", new { receiptHandles = handles });

    public static async Task<JsonNode> Transaction(this HttpClient c, string transactionId) =>
        (await c.Get($"/v1/transactions/{transactionId}")).Json;

    public static async Task<JsonNode> Message(this HttpClient c, string messageId) =>
        (await c.Get($"/v1/messages/{messageId}")).Json;

    public static async Task<string?> DeliveryState(this HttpClient c, string messageId, string group)
    {
        var m = await c.Message(messageId);
        return m["deliveries"]!.AsArray().FirstOrDefault(d => d!["consumerGroup"]!.GetValue<string>() == group)?["state"]?.GetValue<string>();
    }

    public static string Str(this JsonNode? node, string name) => node?[name]?.GetValue<string>() ?? "";

    public static int Int(this JsonNode? node, string name) => node?[name]?.GetValue<int>() ?? -1;
}
