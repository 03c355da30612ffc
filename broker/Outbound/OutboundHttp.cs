using System.Globalization;
using System.Net.Http.Headers;

namespace HalfMsgBroker.Outbound;

/// <summary>The outcome of one outbound call, already reduced to what the broker records.</summary>
internal readonly record struct OutboundResult(int Status, byte[] Body, string? Error)
{
    public bool IsSuccess => Error is null && Status is >= 200 and < 300;

    /// <summary>Short text for lastError / lastCheckResult: "http 503", "timeout", or the exception.</summary>
    public string Describe() => Error ?? $"http {Status}";
}

/// <summary>
/// Every call the broker makes (check-back and push) goes through here: one pooled client from
/// IHttpClientFactory, a per-request timeout, no redirects, and the signature headers.
/// </summary>
internal sealed class OutboundHttp(IHttpClientFactory factory, TimeProvider time)
{
    public const string ClientName = "halfmsg-outbound";
    private static readonly MediaTypeHeaderValue Json = new("application/json") { CharSet = "utf-8" };

    public static void Register(IServiceCollection services) =>
        services.AddHttpClient(ClientName, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                AllowAutoRedirect = false,
                UseCookies = false,
                ConnectTimeout = TimeSpan.FromSeconds(5),
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                MaxConnectionsPerServer = 512,
            })
            .SetHandlerLifetime(Timeout.InfiniteTimeSpan)
            .RemoveAllLoggers();

    public async Task<OutboundResult> PostJsonAsync(
        string url,
        byte[] body,
        int timeoutMs,
        IEnumerable<KeyValuePair<string, string>> headers,
        CallSigning signing,
        int maxResponseBytes,
        CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(timeoutMs);

        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = Json;
        foreach (var (name, value) in headers) request.Headers.TryAddWithoutValidation(name, value);

        var timestamp = time.GetUtcNow().ToUnixTimeSeconds();
        if (Signature.Header(signing, url, timestamp, body) is { } signature)
        {
            request.Headers.TryAddWithoutValidation(Signature.TimestampHeader, timestamp.ToString(CultureInfo.InvariantCulture));
            request.Headers.TryAddWithoutValidation(Signature.SignatureHeader, signature);
        }

        try
        {
            var client = factory.CreateClient(ClientName);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var answer = maxResponseBytes > 0 ? await ReadLimitedAsync(response.Content, maxResponseBytes, timeout.Token) : [];
            return new OutboundResult((int)response.StatusCode, answer, null);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new OutboundResult(0, [], "timeout");
        }
        catch (HttpRequestException e)
        {
            return new OutboundResult(0, [], Shorten(e));
        }
        catch (IOException e)
        {
            return new OutboundResult(0, [], Shorten(e));
        }
    }

    private static async Task<byte[]> ReadLimitedAsync(HttpContent content, int max, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[max];
        var total = 0;
        int read;
        while (total < max && (read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken)) > 0) total += read;
        return buffer[..total];
    }

    private static string Shorten(Exception e)
    {
        var text = e.InnerException is { } inner ? $"{e.Message} ({inner.Message})" : e.Message;
        return text.Length <= 200 ? text : text[..200];
    }
}
