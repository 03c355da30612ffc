using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace HalfMsgBroker.Bench;

/// <summary>The HTTP API v1 calls the workloads make, with request bodies written straight to UTF-8
/// so the generator spends as little CPU as it can on the shared machine.</summary>
internal sealed class BrokerClient : IDisposable
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private readonly HttpClient _http;
    private readonly string _pad;
    private readonly BenchKeys? _keys;

    /// <param name="http1">HTTP/1.1, a connection per concurrent request; otherwise HTTP/2 with prior
    /// knowledge (h2c), every request multiplexed over one connection.</param>
    /// <param name="keys">With access control on, the key each call sends (by role); null sends none.</param>
    public BrokerClient(Uri baseUri, int payloadBytes, bool http1, BenchKeys? keys = null, int connections = 256)
    {
        _keys = keys;
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            UseCookies = false,
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            EnableMultipleHttp2Connections = true,
        };
        _http = new HttpClient(handler) { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(60) };
        if (!http1)
        {
            _http.DefaultRequestVersion = HttpVersion.Version20;
            _http.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }
        _pad = new string('x', Math.Max(0, payloadBytes - 40));
    }

    public HttpClient Http => _http;

    private static ByteArrayContent Content(byte[] body)
    {
        var c = new ByteArrayContent(body);
        c.Headers.ContentType = Json;
        return c;
    }

    private async Task<HttpStatusCode> PostAsync(string path, byte[] body, AuthenticationHeaderValue? key, CancellationToken ct)
    {
        using var r = await SendAsync(HttpMethod.Post, path, body, key, ct);
        await r.Content.LoadIntoBufferAsync(ct);
        return r.StatusCode;
    }

    private Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, byte[] body, AuthenticationHeaderValue? key, CancellationToken ct)
    {
        var request = Request(method, path, key);
        request.Content = Content(body);
        return _http.SendAsync(request, ct);
    }

    /// <summary>A request as HttpClient's own verbs make it: with the client's HTTP version (h2c unless HTTP/1.1).</summary>
    private HttpRequestMessage Request(HttpMethod method, string path, AuthenticationHeaderValue? key)
    {
        var request = new HttpRequestMessage(method, path) { Version = _http.DefaultRequestVersion, VersionPolicy = _http.DefaultVersionPolicy };
        if (key is not null) request.Headers.Authorization = key;
        return request;
    }

    private static byte[] Write(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer)) write(w);
        return buffer.WrittenSpan.ToArray();
    }

    private void WriteBody(Utf8JsonWriter w, long k)
    {
        w.WriteStartObject("body");
        w.WriteNumber("k", k);
        w.WriteString("pad", _pad);
        w.WriteEndObject();
    }

    public Task<HttpStatusCode> SendHalfAsync(string topic, string group, string txId, long k, int? immunitySeconds, CancellationToken ct)
    {
        var body = Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("producerGroup", group);
            w.WriteString("transactionId", txId);
            w.WriteString("tag", "bench");
            WriteBody(w, k);
            if (immunitySeconds is { } s) w.WriteNumber("checkImmunitySeconds", s);
            w.WriteEndObject();
        });
        return PostAsync($"v1/topics/{topic}/half-messages", body, _keys?.Producer, ct);
    }

    public Task<HttpStatusCode> CommitAsync(string txId, CancellationToken ct) =>
        PostAsync($"v1/transactions/{txId}/commit", [], _keys?.Producer, ct);

    public Task<HttpStatusCode> SendPlainAsync(string topic, long k, CancellationToken ct)
    {
        var body = Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("tag", "bench");
            WriteBody(w, k);
            w.WriteEndObject();
        });
        return PostAsync($"v1/topics/{topic}/messages", body, _keys?.Producer, ct);
    }

    /// <summary>POST /v1/half-messages/batch: one half message per (transactionId, k), all on <paramref name="topic"/>.</summary>
    public Task<HttpStatusCode> SendHalfBatchAsync(
        string topic, string group, IReadOnlyList<(string TxId, long K)> items, CancellationToken ct, int? immunitySeconds = null)
    {
        var body = Write(w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("items");
            foreach (var (txId, k) in items)
            {
                w.WriteStartObject();
                w.WriteString("topic", topic);
                w.WriteString("producerGroup", group);
                w.WriteString("transactionId", txId);
                w.WriteString("tag", "bench");
                WriteBody(w, k);
                if (immunitySeconds is { } seconds) w.WriteNumber("checkImmunitySeconds", seconds);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
        return PostAsync("v1/half-messages/batch", body, _keys?.Producer, ct);
    }

    /// <summary>POST /v1/transactions/commit with the listed transaction ids.</summary>
    public Task<HttpStatusCode> CommitBatchAsync(IEnumerable<string> txIds, CancellationToken ct)
    {
        var body = Write(w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("transactionIds");
            foreach (var id in txIds) w.WriteStringValue(id);
            w.WriteEndArray();
            w.WriteEndObject();
        });
        return PostAsync("v1/transactions/commit", body, _keys?.Producer, ct);
    }

    /// <summary>POST /v1/messages/batch: one plain message per k, all on <paramref name="topic"/>.</summary>
    public Task<HttpStatusCode> SendPlainBatchAsync(string topic, IReadOnlyList<long> ks, CancellationToken ct)
    {
        var body = Write(w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("items");
            foreach (var k in ks)
            {
                w.WriteStartObject();
                w.WriteString("topic", topic);
                w.WriteString("tag", "bench");
                WriteBody(w, k);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
        return PostAsync("v1/messages/batch", body, _keys?.Producer, ct);
    }

    /// <summary>One long-poll receive: the messages' (k, receiptHandle) pairs.</summary>
    public async Task<(HttpStatusCode Status, List<(long K, string Handle)> Messages)> ReceiveAsync(
        string group, string topic, int max, int waitSeconds, CancellationToken ct)
    {
        var body = Encoding.UTF8.GetBytes($"{{\"maxMessages\":{max},\"waitSeconds\":{waitSeconds},\"invisibleSeconds\":120}}");
        using var r = await SendAsync(HttpMethod.Post, $"v1/consumer-groups/{group}/topics/{topic}/receive", body, _keys?.Consumer, ct);
        var bytes = await r.Content.ReadAsByteArrayAsync(ct);
        var list = new List<(long, string)>();
        if (r.StatusCode != HttpStatusCode.OK) return (r.StatusCode, list);
        using var doc = JsonDocument.Parse(bytes);
        if (doc.RootElement.TryGetProperty("messages", out var msgs))
        {
            foreach (var m in msgs.EnumerateArray())
            {
                var k = m.TryGetProperty("body", out var b) && b.ValueKind == JsonValueKind.Object && b.TryGetProperty("k", out var kv)
                    ? kv.GetInt64() : -1;
                list.Add((k, m.GetProperty("receiptHandle").GetString() ?? ""));
            }
        }
        return (r.StatusCode, list);
    }

    public Task<HttpStatusCode> AckAsync(string group, IEnumerable<string> handles, CancellationToken ct)
    {
        var body = Write(w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("receiptHandles");
            foreach (var h in handles) w.WriteStringValue(h);
            w.WriteEndArray();
            w.WriteEndObject();
        });
        return PostAsync($"v1/consumer-groups/{group}/ack", body, _keys?.Consumer, ct);
    }

    public async Task PutJsonAsync(string path, string json, CancellationToken ct = default)
    {
        using var r = await SendAsync(HttpMethod.Put, path, Encoding.UTF8.GetBytes(json), _keys?.Admin, ct);
        var text = await r.Content.ReadAsStringAsync(ct);
        if (!r.IsSuccessStatusCode)
            throw new InvalidOperationException($"PUT {path} answered {(int)r.StatusCode}: {text}");
    }

    public async Task<string> GetStringAsync(string path, CancellationToken ct = default)
    {
        using var request = Request(HttpMethod.Get, path, _keys?.Admin);
        using var r = await _http.SendAsync(request, ct);
        r.EnsureSuccessStatusCode();
        return await r.Content.ReadAsStringAsync(ct);
    }

    public void Dispose() => _http.Dispose();
}
