using System.Net;
using System.Text;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Api;

/// <summary>
/// Every validation rule answers a 4xx problem with a stable code, and stores nothing: after each
/// bad request the broker's topic counts and the probed transaction are unchanged.
/// </summary>
public sealed class BadInputTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    private readonly HttpClient _c = broker.Client;

    public static TheoryData<string, string, string, int, string> Cases()
    {
        var longName = new string('a', 128);
        var keys33 = "[" + string.Join(",", Enumerable.Range(0, 33).Select(i => $"\"k{i}\"")) + "]";
        var props65 = "{" + string.Join(",", Enumerable.Range(0, 65).Select(i => $"\"p{i}\":\"v\"")) + "}";
        const string half = "/v1/topics/bad/half-messages";
        const string plain = "/v1/topics/bad/messages";
        return new TheoryData<string, string, string, int, string>
        {
            { "POST", plain, "{\"body\":", 400, "malformed-json" },
            { "POST", plain, "not json", 400, "malformed-json" },
            { "POST", plain, "null", 400, "malformed-json" },
            { "POST", plain, "", 400, "malformed-json" },
            { "POST", plain, "{\"tag\":\"x\"}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"delaySeconds\":\"soon\"}", 400, "malformed-json" },
            { "POST", plain, "{\"body\":1,\"delaySeconds\":1.5}", 400, "malformed-json" },
            { "POST", plain, "{\"body\":1,\"delaySeconds\":86401}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"delaySeconds\":-1}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"deliverAt\":\"tomorrow\"}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"deliverAt\":\"2026-11-25T10:00:00\"}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"deliverAt\":\"2099-01-01T00:00:00Z\"}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"delaySeconds\":5,\"deliverAt\":\"2026-11-25T10:00:00Z\"}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"tag\":\"has space\"}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"tag\":\"a|b\"}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"tag\":\"" + longName + "\"}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"keys\":" + keys33 + "}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"keys\":[\"\"]}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"keys\":[\"" + new string('k', 129) + "\"]}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"keys\":\"one\"}", 400, "malformed-json" },
            { "POST", plain, "{\"body\":1,\"orderingKey\":\"\"}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"orderingKey\":\"" + new string('k', 129) + "\"}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"orderingKey\":7}", 400, "malformed-json" },
            { "POST", half, "{\"producerGroup\":\"g\",\"body\":1,\"orderingKey\":\"a\\u0001b\"}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"properties\":" + props65 + "}", 400, "invalid-field" },
            { "POST", plain, "{\"body\":1,\"properties\":{\"a\":1}}", 400, "malformed-json" },
            { "POST", plain, "{\"body\":1,\"properties\":{\"a\":null}}", 400, "invalid-field" },
            { "POST", "/v1/topics/bad%20topic/messages", "{\"body\":1}", 400, "invalid-name" },
            { "POST", "/v1/topics/" + longName + "/messages", "{\"body\":1}", 400, "invalid-name" },
            { "POST", half, "{\"body\":1}", 400, "invalid-name" },
            { "POST", half, "{\"producerGroup\":\"bad group\",\"body\":1}", 400, "invalid-name" },
            { "POST", half, "{\"producerGroup\":\"g\",\"transactionId\":\"a/b\",\"body\":1}", 400, "invalid-field" },
            { "POST", half, "{\"producerGroup\":\"g\",\"transactionId\":\"" + new string('t', 129) + "\",\"body\":1}", 400, "invalid-field" },
            { "POST", half, "{\"producerGroup\":\"g\",\"body\":1,\"checkImmunitySeconds\":-5}", 400, "invalid-field" },
            { "POST", half, "{\"producerGroup\":\"g\"}", 400, "invalid-field" },
            { "POST", "/v1/transactions/a%20b/commit", "", 400, "invalid-field" },
            { "PUT", "/v1/producer-groups/bad%20group", "{}", 400, "invalid-name" },
            { "PUT", "/v1/producer-groups/g1", "{\"checkUrl\":\"not a url\"}", 400, "invalid-field" },
            { "PUT", "/v1/producer-groups/g1", "{\"checkUrl\":\"ftp://x/check\"}", 400, "invalid-field" },
            { "PUT", "/v1/producer-groups/g1", "{\"checkTimeoutMs\":10}", 400, "invalid-field" },
            { "PUT", "/v1/consumer-groups/c1/subscriptions/bad%20topic", "{}", 400, "invalid-name" },
            { "PUT", "/v1/consumer-groups/c%201/subscriptions/t", "{}", 400, "invalid-name" },
            { "PUT", "/v1/consumer-groups/c1/subscriptions/t", "{\"tagFilter\":\"a b\"}", 400, "invalid-field" },
            { "PUT", "/v1/consumer-groups/c1/subscriptions/t", "{\"maxAttempts\":0}", 400, "invalid-field" },
            { "PUT", "/v1/consumer-groups/c1/subscriptions/t", "{\"onExhausted\":\"explode\"}", 400, "invalid-field" },
            { "PUT", "/v1/consumer-groups/c1/subscriptions/t", "{\"push\":{}}", 400, "invalid-field" },
            { "PUT", "/v1/consumer-groups/c1/subscriptions/t", "{\"push\":{\"url\":\"http://x/hook\",\"timeoutMs\":0}}", 400, "invalid-field" },
            { "POST", "/v1/consumer-groups/c1/topics/t/receive", "{\"maxMessages\":0}", 400, "invalid-field" },
            { "POST", "/v1/consumer-groups/c1/topics/t/receive", "{\"maxMessages\":101}", 400, "invalid-field" },
            { "POST", "/v1/consumer-groups/c1/topics/t/receive", "{\"waitSeconds\":31}", 400, "invalid-field" },
            { "POST", "/v1/consumer-groups/c1/topics/t/receive", "{\"invisibleSeconds\":43201}", 400, "invalid-field" },
            { "POST", "/v1/consumer-groups/c1/ack", "{}", 400, "invalid-field" },
            { "POST", "/v1/consumer-groups/c1/ack", "{\"receiptHandles\":[\"forged\"]}", 400, "invalid-receipt-handle" },
            { "POST", "/v1/consumer-groups/c1/ack", "{\"receiptHandles\":[\"AaIUbU3tevudVoUXKg9sImVOoczXoNxOYzoLAKTFMpwjujmvGz7MoA\"]}", 400, "invalid-receipt-handle" },
            { "POST", "/v1/consumer-groups/c1/nack", "{\"receiptHandle\":\"x\",\"retryAfterSeconds\":-1}", 400, "invalid-field" },
            { "POST", "/v1/consumer-groups/c1/nack", "{\"receiptHandle\":\"forged\"}", 400, "invalid-receipt-handle" },
            { "POST", "/v1/consumer-groups/c1/change-invisibility", "{\"receiptHandle\":\"forged\"}", 400, "invalid-field" },
            { "POST", "/v1/consumer-groups/c1/change-invisibility", "{\"receiptHandle\":\"forged\",\"invisibleSeconds\":5}", 400, "invalid-receipt-handle" },
            { "POST", "/v1/consumer-groups/c1/dead-letters/redrive", "{\"messageIds\":[\"nope\"]}", 400, "invalid-field" },
            { "GET", "/v1/transactions?state=hanging", "", 400, "invalid-field" },
            { "GET", "/v1/transactions?limit=0", "", 400, "invalid-field" },
            { "GET", "/v1/transactions?after=garbage", "", 400, "invalid-field" },
            { "GET", "/v1/messages/not-a-guid", "", 400, "invalid-field" },
            { "GET", "/v1/messages", "", 400, "invalid-field" },
        };
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Bad_input_is_a_4xx_problem_and_stores_nothing(string method, string url, string body, int status, string code)
    {
        var before = await Snapshot();
        using var request = new HttpRequestMessage(new HttpMethod(method), url);
        if (method != "GET") request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await _c.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        Assert.True((int)response.StatusCode == status, $"{method} {url} {body} -> {(int)response.StatusCode} {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = System.Text.Json.Nodes.JsonNode.Parse(text)!;
        Assert.Equal(code, problem.Str("code"));
        Assert.False(string.IsNullOrWhiteSpace(problem.Str("detail")), text);
        Assert.Equal(before, await Snapshot());
    }

    [Fact]
    public async Task A_body_over_the_size_limit_is_413_and_refused_while_reading()
    {
        var before = await Snapshot();
        var huge = "{\"body\":\"" + new string('x', 4 * 1024 * 1024) + "\"}";
        var answer = await _c.PostRaw("/v1/topics/bad/messages", huge);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, answer.Status);
        Assert.Equal("message-too-large", answer.Code);

        // Without a Content-Length the limit still holds: the body is streamed and cut at the limit.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/topics/bad/messages")
        {
            Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(huge))),
        };
        request.Content.Headers.ContentType = new("application/json");
        request.Headers.TransferEncodingChunked = true;
        using var chunked = await _c.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, chunked.StatusCode);
        Assert.Equal(before, await Snapshot());
    }

    [Fact]
    public async Task A_non_json_content_type_is_415()
    {
        var answer = await _c.PostRaw("/v1/topics/bad/messages", "body=1", "application/x-www-form-urlencoded");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, answer.Status);
        Assert.Equal("unsupported-media-type", answer.Code);
    }

    private async Task<string> Snapshot()
    {
        var topics = (await _c.Get("/v1/topics")).Raw;
        var prepared = (await _c.Get("/v1/transactions?limit=1000")).Raw;
        var groups = (await _c.Get("/v1/consumer-groups/c1")).Raw;
        var producer = (await _c.Get("/v1/producer-groups/g1")).Raw;
        return System.Text.RegularExpressions.Regex.Replace(string.Join("|", topics, prepared, groups, producer), "\"traceId\":\"[^\"]*\"", "");
    }
}
