using System.Net;
using System.Security.Authentication;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Client.Tests;

/// <summary>HTTPS from a certificate named only in Kestrel's configuration, and the SDK trusting it by its thumbprint.</summary>
public sealed class TlsTests
{
    private static ServiceProvider Sdk(Uri broker, bool useHttp2, params string[] pins)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        var halfMsg = services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = broker;
            o.UseHttp2 = useHttp2;
            o.MaxRetryAttempts = 0;
        });
        if (pins.Length > 0)
        {
            halfMsg.HttpClient.ConfigurePrimaryHttpMessageHandler(() => new HttpClientHandler
            {
                ServerCertificateCustomValidationCallback = PinnedCertificate.Trust(pins),
            });
        }

        return services.BuildServiceProvider();
    }

    private static IEnumerable<Exception> Causes(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException) yield return ex;
    }

    private static HttpClient NamedClient(IServiceProvider services) =>
        services.GetRequiredService<IHttpClientFactory>().CreateClient(HalfMsgServiceCollectionExtensions.HttpClientName);

    [Fact]
    public async Task The_SDK_runs_a_transaction_over_https_trusting_only_the_pinned_certificate()
    {
        using var certificate = TestCertificates.CreateSelfSigned();
        using var stranger = TestCertificates.CreateSelfSigned();
        await using var broker = await TlsBroker.StartAsync(certificate);
        var pin = certificate.GetCertHashString(HashAlgorithmName.SHA256);

        // Neither the system's CAs nor a pin of another certificate accept it.
        foreach (var pins in new[] { Array.Empty<string>(), [stranger.GetCertHashString(HashAlgorithmName.SHA256)] })
        {
            await using var untrusting = Sdk(broker.HttpsAddress, useHttp2: false, pins);
            var refused = await Assert.ThrowsAnyAsync<Exception>(() => untrusting.GetRequiredService<HalfMsgClient>().Api.GetTopicsAsync());
            Assert.Contains(Causes(refused), e => e is AuthenticationException);
        }

        await using var provider = Sdk(broker.HttpsAddress, useHttp2: true, pin);
        var client = provider.GetRequiredService<HalfMsgClient>();
        var topic = Names.Unique("tls-orders");
        var group = Names.Unique("tls-stock");
        await client.Api.PutSubscriptionAsync(group, topic, new SubscriptionRequest());
        var half = await client.SendHalfAsync(topic, Names.Unique("tls-producers"), new Order("tls-1", 1));
        Assert.Equal(MessageState.Committed, (await client.CommitAsync(half.TransactionId)).State);
        var received = Assert.Single(await client.ReceiveAsync(group, topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(5) }));
        Assert.Equal(half.MessageId, received.MessageId);
        Assert.True(await received.AckAsync());

        // UseHttp2 over TLS: HTTP/2 chosen in the handshake (ALPN); without it, HTTP/1.1.
        using (var h2 = await NamedClient(provider).GetAsync(new Uri("health/live", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, h2.StatusCode);
            Assert.Equal(HttpVersion.Version20, h2.Version);
        }

        await using (var http1 = Sdk(broker.HttpsAddress, useHttp2: false, pin))
        {
            using var response = await NamedClient(http1).GetAsync(new Uri("health/live", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(HttpVersion.Version11, response.Version);
        }

        // The plain HTTP/1.1 endpoint configured next to it still answers.
        using var plain = new HttpClient();
        using var health = await plain.GetAsync(new Uri(broker.HttpAddress, "health/live"));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal(HttpVersion.Version11, health.Version);
    }

    [Fact]
    public async Task A_replaced_certificate_file_is_served_to_new_connections_without_a_restart()
    {
        using var first = TestCertificates.CreateSelfSigned();
        using var second = TestCertificates.CreateSelfSigned();
        var firstPin = first.GetCertHashString(HashAlgorithmName.SHA256);
        var secondPin = second.GetCertHashString(HashAlgorithmName.SHA256);
        await using var broker = await TlsBroker.StartAsync(first);
        await using var provider = Sdk(broker.HttpsAddress, useHttp2: true, firstPin, secondPin);
        var client = provider.GetRequiredService<HalfMsgClient>();
        await client.Api.GetTopicsAsync();
        Assert.Equal(firstPin, await TlsBroker.PresentedThumbprintAsync(broker.HttpsAddress));

        broker.ReplaceCertificate(second);

        await Eventually.UntilAsync(
            () => TlsBroker.PresentedThumbprintAsync(broker.HttpsAddress),
            presented => presented == secondPin,
            "the new certificate on a new connection",
            TimeSpan.FromSeconds(30));
        // Kestrel rebinds the endpoint, closing the SDK's HTTP/2 connection; a client that trusts both
        // certificates reconnects (a call racing the rebind may find no listener, so poll).
        await Eventually.UntilAsync(
            async () =>
            {
                try
                {
                    await client.Api.GetTopicsAsync();
                    return true;
                }
                catch (Exception ex) when (Causes(ex).Any(e => e is HttpRequestException))
                {
                    return false;
                }
            },
            ok => ok,
            "an SDK call after the rotation");
    }
}
