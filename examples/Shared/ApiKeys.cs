using System.Net.Http.Headers;
using HalfMsgBroker.Client;

namespace HalfMsgBroker.Examples;

/// <summary>
/// How the example services get their API keys (compiled into each of them; see examples/README.md,
/// "Access control"). A key has one role, so a service that both produces and consumes holds two: its
/// producer key is the SDK's <c>HalfMsg:ApiKey</c>, sent on every call, and its consumer key replaces it
/// on the consumer-group calls (<see cref="ConsumerKeyHandler"/>).
/// </summary>
internal static class ApiKeys
{
    /// <summary>The folder of key files: one file per setting, named with <c>__</c> for <c>:</c> (<c>HalfMsg__ApiKey</c>).</summary>
    public const string DirectorySetting = "ApiKeys:Directory";

    /// <summary>
    /// Adds the files in <c>ApiKeys:Directory</c> as settings (AddKeyPerFile), after every other source,
    /// so a key file wins. Compose's make-keys step writes them there; keys stay out of environment
    /// variables and command lines, which other processes and <c>docker inspect</c> can read.
    /// </summary>
    public static void AddApiKeyFiles(this IHostApplicationBuilder builder)
    {
        if (builder.Configuration[DirectorySetting] is { Length: > 0 } directory)
        {
            builder.Configuration.AddKeyPerFile(Path.GetFullPath(directory), optional: false);
        }
    }

    /// <summary>
    /// Sends <paramref name="consumerKey"/> instead of <c>HalfMsg:ApiKey</c> on calls under
    /// <c>/v1/consumer-groups/</c> (subscriptions, receive, ack, nack, dead letters). Nothing changes when
    /// it is empty, e.g. against a broker on loopback that needs no keys.
    /// </summary>
    public static IHalfMsgBuilder UseConsumerApiKey(this IHalfMsgBuilder builder, string? consumerKey)
    {
        if (!string.IsNullOrEmpty(consumerKey))
        {
            builder.HttpClient.AddHttpMessageHandler(() => new ConsumerKeyHandler(consumerKey));
        }
        return builder;
    }
}

/// <summary>
/// Puts the consumer key on consumer-group calls. It runs inside the SDK's own handler, which has already
/// set the producer key, and inside the retry pipeline, so every attempt carries the right key.
/// </summary>
internal sealed class ConsumerKeyHandler(string consumerKey) : DelegatingHandler
{
    private readonly AuthenticationHeaderValue _authorization = new("Bearer", consumerKey);

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.RequestUri?.AbsolutePath.Contains("/v1/consumer-groups/", StringComparison.Ordinal) == true)
        {
            request.Headers.Authorization = _authorization;
        }
        return base.SendAsync(request, cancellationToken);
    }
}
