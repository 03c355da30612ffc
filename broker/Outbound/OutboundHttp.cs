using System.Globalization;
using System.Net.Http.Headers;
using HalfMsgBroker.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Outbound;

/// <summary>The outcome of one outbound call, already reduced to what the broker records.</summary>
internal readonly record struct OutboundResult(int Status, byte[] Body, string? Error)
{
    public bool IsSuccess => Error is null && Status is >= 200 and < 300;

    /// <summary>Short text for lastError / lastCheckResult: "http 503", or one of <see cref="OutboundErrors"/>' words.</summary>
    public string Describe() => Error ?? $"http {Status}";
}

/// <summary>
/// Every call the broker makes (check-back and push) goes through here: one pooled client from
/// IHttpClientFactory, a per-request timeout, no redirects, the signature headers, and the
/// outbound guard on every connection.
/// </summary>
internal sealed class OutboundHttp(IHttpClientFactory factory, TimeProvider time, ILogger<OutboundHttp> logger)
{
    public const string ClientName = "halfmsg-outbound";
    private static readonly MediaTypeHeaderValue Json = new("application/json") { CharSet = "utf-8" };

    public static void Register(IServiceCollection services)
    {
        OutboundOptionsSetup.Register(services);
        services.TryAddSingleton<IOutboundResolver, DnsOutboundResolver>();
        services.AddSingleton<OutboundPolicy>();
        services.AddSingleton<GuardedConnector>();
        services.AddHttpClient(ClientName, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(sp => new SocketsHttpHandler
            {
                AllowAutoRedirect = false,
                UseCookies = false,
                // A proxy would open the connection to the target itself, where the guard cannot see
                // the address; the broker calls targets directly.
                UseProxy = false,
                ConnectTimeout = TimeSpan.FromSeconds(5),
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                MaxConnectionsPerServer = 512,
                // Every new connection (HTTP/1.1 and HTTP/2 alike; requests stay on HTTP/1.1, so never
                // QUIC) is opened by this callback, and a pooled connection is only ever reused for the
                // host:port it was opened to: no request reaches an address the guard did not check.
                ConnectCallback = sp.GetRequiredService<GuardedConnector>().ConnectAsync,
            })
            .SetHandlerLifetime(Timeout.InfiniteTimeSpan)
            .RemoveAllLoggers();
    }

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
        var progress = new ConnectProgress();
        request.Options.Set(ConnectProgress.Key, progress);

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
            return new OutboundResult(0, [], progress.StillConnecting ? OutboundErrors.ConnectTimeout : OutboundErrors.Timeout);
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            var error = OutboundErrors.Describe(e);
            LogFailure(request.RequestUri, error, e);
            return new OutboundResult(0, [], error);
        }
    }

    /// <summary>Answers carry only the fixed word; the log gets the exception, for the operator.</summary>
    private void LogFailure(Uri? url, string error, Exception e)
    {
        var target = url?.Authority ?? "?";
        switch (error)
        {
            case OutboundErrors.UrlNotAllowed:
                logger.LogWarning("Refused to connect to {Target}: {Reason}", target, FindRefusal(e));
                break;
            case OutboundErrors.ConnectionFailed or OutboundErrors.InvalidAnswer:
                logger.LogWarning(e, "Outbound call to {Target} failed ({Error})", target, error);
                break;
            default:
                logger.LogDebug(e, "Outbound call to {Target} failed ({Error})", target, error);
                break;
        }
    }

    private static OutboundRefusal? FindRefusal(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is OutboundRefusedException refused) return refused.Refusal;
        }
        return null;
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
}
