using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;

namespace HalfMsgBroker.Client.Http;

/// <summary>
/// Outermost handler of the broker client. It makes every call that can be retried safely
/// retry-safe and marks it so: a plain send gets an <c>Idempotency-Key</c> when it has none,
/// a half message a <c>transactionId</c> when it has none, and so does each item of a batch send
/// (<c>idempotencyKey</c>, <c>transactionId</c>). Receive, ack, nack,
/// change-invisibility and redrive stay unmarked, so the resilience pipeline never repeats them.
/// It also sets the HTTP version (<see cref="HalfMsgClientOptions.UseHttp2"/>): Refit builds its own
/// request messages, so the client's default version would not reach them. It adds the API key
/// (<see cref="HalfMsgClientOptions.ApiKey"/>) to every call, and gives every body-less POST, PUT and
/// DELETE an empty JSON object: the broker refuses a state-changing request that carries neither a JSON
/// content type nor an <c>Authorization</c> header (what a browser could send cross-site), and a broker
/// on loopback in <c>Protected</c> mode needs no key.
/// </summary>
internal sealed class HalfMsgRequestHandler(HalfMsgClientOptions options) : DelegatingHandler
{
    private static readonly byte[] EmptyJsonObject = "{}"u8.ToArray();

    private readonly bool _useHttp2 = options.UseHttp2;
    private readonly string? _apiKey = options.EffectiveApiKey;

    /// <summary>Request option that tells the retry strategy the call may be repeated.</summary>
    public static readonly HttpRequestOptionsKey<bool> RetrySafe = new("HalfMsgBroker.RetrySafe");

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (_apiKey is not null && request.Headers.Authorization is null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _apiKey);
        }

        if (ChangesState(request.Method) && HasNoBody(request.Content))
        {
            request.Content?.Dispose();
            request.Content = JsonContent(EmptyJsonObject);
        }

        var path = request.RequestUri?.AbsolutePath ?? string.Empty;
        var safe = false;
        if (request.Method == HttpMethod.Get || request.Method == HttpMethod.Put || request.Method == HttpMethod.Delete)
        {
            safe = true;
        }
        else if (request.Method == HttpMethod.Post)
        {
            if (path.StartsWith("/v1/topics/", StringComparison.Ordinal) && path.EndsWith("/messages", StringComparison.Ordinal)
                && !path.EndsWith("/half-messages", StringComparison.Ordinal))
            {
                if (!request.Headers.Contains(HalfMsgHeaders.IdempotencyKey))
                {
                    request.Headers.TryAddWithoutValidation(HalfMsgHeaders.IdempotencyKey, Guid.NewGuid().ToString("N"));
                }

                safe = true;
            }
            else if (path.StartsWith("/v1/topics/", StringComparison.Ordinal) && path.EndsWith("/half-messages", StringComparison.Ordinal))
            {
                await EnsureTransactionIdAsync(request, cancellationToken).ConfigureAwait(false);
                safe = true;
            }
            else if (path is "/v1/messages/batch" or "/v1/half-messages/batch")
            {
                await EnsureItemIdsAsync(request, path == "/v1/messages/batch" ? "idempotencyKey" : "transactionId", cancellationToken).ConfigureAwait(false);
                safe = true;
            }
            // One transaction or a batch of them (/v1/transactions/commit): ending is idempotent either way.
            else if (path.StartsWith("/v1/transactions/", StringComparison.Ordinal)
                && (path.EndsWith("/commit", StringComparison.Ordinal) || path.EndsWith("/rollback", StringComparison.Ordinal)))
            {
                safe = true;
            }
        }

        if (safe && request.Content is not null)
        {
            // a retry sends the same request again: make its body replayable
            await request.Content.LoadIntoBufferAsync(cancellationToken).ConfigureAwait(false);
        }

        request.Options.Set(RetrySafe, safe);
        if (_useHttp2)
        {
            request.Version = HttpVersion.Version20;
            // Over TLS, ALPN may fall back to HTTP/1.1; without TLS only prior knowledge (h2c) gives HTTP/2.
            request.VersionPolicy = request.RequestUri?.Scheme == Uri.UriSchemeHttps
                ? HttpVersionPolicy.RequestVersionOrLower
                : HttpVersionPolicy.RequestVersionExact;
        }

        return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
    }

    private static async Task EnsureTransactionIdAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (await ReadObjectAsync(request, cancellationToken).ConfigureAwait(false) is not { } obj || HasId(obj, "transactionId"))
        {
            return;
        }

        obj["transactionId"] = TransactionIds.New();
        Replace(request, obj);
    }

    /// <summary>Gives each object of a batch's <c>items</c> a <paramref name="field"/> when it has none, so a retry replays instead of duplicating.</summary>
    private static async Task EnsureItemIdsAsync(HttpRequestMessage request, string field, CancellationToken cancellationToken)
    {
        if (await ReadObjectAsync(request, cancellationToken).ConfigureAwait(false) is not { } obj || obj["items"] is not JsonArray items)
        {
            return;
        }

        var changed = false;
        foreach (var item in items)
        {
            if (item is JsonObject o && !HasId(o, field))
            {
                o[field] = TransactionIds.New();
                changed = true;
            }
        }

        if (changed)
        {
            Replace(request, obj);
        }
    }

    /// <summary>The request's JSON object body, or null when it has none or it is not JSON (the broker then answers malformed-json).</summary>
    private static async Task<JsonObject?> ReadObjectAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Content is null)
        {
            return null;
        }

        var bytes = await request.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return JsonNode.Parse(bytes) as JsonObject;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private static bool HasId(JsonObject obj, string field) =>
        obj[field] is JsonValue value && value.TryGetValue<string>(out var existing) && !string.IsNullOrEmpty(existing);

    private static void Replace(HttpRequestMessage request, JsonObject body)
    {
        var content = JsonContent(System.Text.Encoding.UTF8.GetBytes(body.ToJsonString()));
        request.Content?.Dispose();
        request.Content = content;
    }

    private static bool ChangesState(HttpMethod method) =>
        method == HttpMethod.Post || method == HttpMethod.Put || method == HttpMethod.Delete || method == HttpMethod.Patch;

    // Refit gives a body-less POST an empty content without a type, so "no body" is either.
    private static bool HasNoBody(HttpContent? content) =>
        content is null || (content.Headers.ContentType is null && content.Headers.ContentLength == 0);

    private static ByteArrayContent JsonContent(byte[] utf8)
    {
        var content = new ByteArrayContent(utf8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        return content;
    }
}
