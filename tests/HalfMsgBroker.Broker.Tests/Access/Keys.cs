using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Access;

/// <summary>Creating keys for tests through the API, as an operator would.</summary>
internal static class Keys
{
    public static async Task<(string Id, string Key)> Create(
        HttpClient admin, string name, string role, string[]? producerGroups = null, string[]? consumerGroups = null, string[]? topics = null)
    {
        var answer = await admin.Post("/v1/api-keys", new { name, role, producerGroups, consumerGroups, topics });
        Assert.True(answer.Status == HttpStatusCode.Created, answer.ToString());
        return (answer.Json.Str("id"), answer.Json.Str("key"));
    }
}
