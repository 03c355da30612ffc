using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace HalfMsgBroker.Tests.Support;

/// <summary>Terse JSON calls for tests: every answer comes back as status + parsed body.</summary>
public static class Http
{
    public sealed record Answer(HttpStatusCode Status, JsonNode? Body, string Raw, string? ContentType)
    {
        public JsonNode Json => Body ?? throw new Xunit.Sdk.XunitException($"expected a JSON body, got: {Raw}");
        public string? Code => Body?["code"]?.GetValue<string>();
        public override string ToString() => $"{(int)Status} {Raw}";
    }

    public static Task<Answer> Post(this HttpClient client, string url, object? body = null, IDictionary<string, string>? headers = null) =>
        Send(client, HttpMethod.Post, url, body, headers);

    public static Task<Answer> Put(this HttpClient client, string url, object? body = null) => Send(client, HttpMethod.Put, url, body, null);

    public static Task<Answer> Get(this HttpClient client, string url) => Send(client, HttpMethod.Get, url, null, null);

    public static Task<Answer> Delete(this HttpClient client, string url) => Send(client, HttpMethod.Delete, url, null, null);

    public static Task<Answer> PostRaw(this HttpClient client, string url, string raw, string contentType = "application/json") =>
        Send(client, HttpMethod.Post, url, new StringContent(raw, Encoding.UTF8, contentType), null);

    private static async Task<Answer> Send(HttpClient client, HttpMethod method, string url, object? body, IDictionary<string, string>? headers)
    {
        using var request = new HttpRequestMessage(method, url);
        request.Content = body switch
        {
            null => null,
            HttpContent content => content,
            _ => JsonContent.Create(body),
        };
        foreach (var (name, value) in headers ?? new Dictionary<string, string>()) request.Headers.TryAddWithoutValidation(name, value);
        using var response = await client.SendAsync(request);
        var raw = await response.Content.ReadAsStringAsync();
        JsonNode? json = null;
        try
        {
            json = raw.Length > 0 ? JsonNode.Parse(raw) : null;
        }
        catch (System.Text.Json.JsonException)
        {
        }
        return new Answer(response.StatusCode, json, raw, response.Content.Headers.ContentType?.MediaType);
    }
}
