using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace HalfMsgBroker.Bench;

/// <summary>
/// The keys of a run with access control on, as an operator would set it up: producers send with a
/// producer key, consumers receive and ack with a consumer key, setup uses the admin key.
/// </summary>
internal sealed record BenchKeys(AuthenticationHeaderValue Admin, AuthenticationHeaderValue Producer, AuthenticationHeaderValue Consumer)
{
    public static async Task<BenchKeys> CreateAsync(Uri broker, string adminKey)
    {
        using var http = new HttpClient { BaseAddress = broker, Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
        var producer = await CreateAsync(http, new { name = "bench-producers", role = "producer", producerGroups = new[] { "bench*" }, topics = new[] { "*" } });
        var consumer = await CreateAsync(http, new { name = "bench-consumers", role = "consumer", consumerGroups = new[] { "bench*" } });
        return new BenchKeys(http.DefaultRequestHeaders.Authorization, Bearer(producer), Bearer(consumer));
    }

    private static async Task<string> CreateAsync(HttpClient http, object request)
    {
        using var r = await http.PostAsJsonAsync("v1/api-keys", request);
        var text = await r.Content.ReadAsStringAsync();
        if (!r.IsSuccessStatusCode) throw new InvalidOperationException($"POST /v1/api-keys answered {(int)r.StatusCode}: {text}");
        return JsonNode.Parse(text)!["key"]!.GetValue<string>();
    }

    private static AuthenticationHeaderValue Bearer(string key) => new("Bearer", key);
}
