using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Api;

/// <summary>The OpenAPI document describes every body and answer, and the reference page at /scalar is served by the broker alone.</summary>
public sealed partial class OpenApiTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    /// <summary>POST endpoints whose whole input is the route: no body to describe.</summary>
    private static readonly HashSet<string> Bodiless =
    [
        "post /v1/transactions/{transactionId}/commit",
        "post /v1/transactions/{transactionId}/rollback",
        "post /v1/producer-groups/{group}/signing-secret/rotate",
        "post /v1/consumer-groups/{group}/subscriptions/{topic}/signing-secret/rotate",
    ];

    [Fact]
    public async Task Every_v1_operation_has_its_request_and_success_response_schemas()
    {
        using var anonymous = broker.Factory.CreateAnonymousClient();
        var document = await anonymous.Get("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, document.Status);
        var paths = document.Json["paths"]!.AsObject().Where(p => p.Key.StartsWith("/v1", StringComparison.Ordinal)).ToList();
        Assert.True(paths.Count >= 20, $"expected the whole API, found {paths.Count} /v1 paths");

        var missing = new List<string>();
        var bodies = 0;
        foreach (var (path, item) in paths)
        {
            foreach (var (method, operation) in item!.AsObject().Where(o => o.Key is "get" or "post" or "put" or "delete" or "patch"))
            {
                var name = $"{method} {path}";
                var takesBody = method is "post" or "put" && !Bodiless.Contains(name);
                var request = operation!["requestBody"]?["content"]?["application/json"]?["schema"];
                if (takesBody && !IsSchema(request)) missing.Add(name + ": request schema");
                if (request is not null) bodies++;

                var successes = operation["responses"]!.AsObject().Where(r => r.Key.StartsWith('2')).ToList();
                if (successes.Count == 0) missing.Add(name + ": no success response");
                foreach (var (status, response) in successes.Where(r => r.Key != "204"))
                {
                    if (!IsSchema(response!["content"]?["application/json"]?["schema"])) missing.Add($"{name}: {status} response schema");
                }
            }
        }
        Assert.True(missing.Count == 0, "missing in /openapi/v1.json: " + string.Join("; ", missing));
        Assert.True(bodies >= 13, $"expected every body endpoint's schema, found {bodies}");

        // How to authenticate: the API key as a bearer token, for every operation.
        Assert.Equal(("http", "bearer"), (document.Json["components"]!["securitySchemes"]!["apiKey"]!.Str("type"),
            document.Json["components"]!["securitySchemes"]!["apiKey"]!.Str("scheme")));
        Assert.NotNull(document.Json["security"]![0]!["apiKey"]);

        // The schemas are the real ones: a send's body names its fields.
        var send = paths.Single(p => p.Key == "/v1/topics/{topic}/messages").Value!["post"]!["requestBody"]!["content"]!["application/json"]!["schema"]!;
        var sendSchema = Resolve(document.Json, send);
        Assert.True(sendSchema["properties"]?["body"] is not null, "the send request's schema has no 'body': " + sendSchema.ToJsonString());
    }

    [Fact]
    public async Task The_api_reference_page_is_served_by_the_broker_without_the_internet()
    {
        using var anonymous = broker.Factory.CreateAnonymousClient();
        var page = await anonymous.GetAsync(new Uri("/scalar", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var html = await page.Content.ReadAsStringAsync();

        var references = Reference().Matches(html).Select(m => m.Groups["url"].Value).ToList();
        Assert.NotEmpty(references);
        Assert.All(references, url => Assert.False(Uri.TryCreate(url, UriKind.Absolute, out var u) && u.Scheme is "http" or "https",
            $"the page loads {url} from another origin"));
        foreach (var script in Script().Matches(html).Select(m => m.Groups["url"].Value))
        {
            var answer = await anonymous.GetAsync(new Uri(new Uri("http://localhost/scalar/"), script));
            Assert.True(answer.StatusCode == HttpStatusCode.OK, $"{script}: {answer.StatusCode}");
        }
        // The page reads the broker's own document, and is told not to fetch web fonts or send usage telemetry.
        Assert.Contains("\"url\":\"openapi/v1.json\"", html, StringComparison.Ordinal);
        Assert.Contains("\"withDefaultFonts\":false", html, StringComparison.Ordinal);
        Assert.Contains("\"telemetry\":false", html, StringComparison.Ordinal);
    }

    private static bool IsSchema(JsonNode? schema) => schema is JsonObject o && o.Count > 0;

    private static JsonNode Resolve(JsonNode document, JsonNode schema)
    {
        if (schema["$ref"]?.GetValue<string>() is not { } reference) return schema;
        var node = document;
        foreach (var part in reference.TrimStart('#', '/').Split('/')) node = node[part]!;
        return node;
    }

    [GeneratedRegex("""(?:src|href)\s*=\s*["'](?<url>[^"']+)["']""")]
    private static partial Regex Reference();

    [GeneratedRegex("""<script[^>]*\ssrc\s*=\s*["'](?<url>[^"']+)["']""")]
    private static partial Regex Script();
}
