using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Client.Tests;

/// <summary>The check and push endpoints verifying v2 signatures, v1 only when allowed, and failing closed.</summary>
[Collection(BrokerCollection.Name)]
public sealed class SignedEndpointTests(BrokerFixture broker)
{
    private const string CheckBody = """{"transactionId":"t-1","messageId":"m-1","topic":"orders","producerGroup":"g","body":{"a":1},"checkTimes":1,"bornAt":"2026-01-01T00:00:00Z"}""";
    private static readonly byte[] CheckBytes = Encoding.UTF8.GetBytes(CheckBody);

    private static Task<TestApp> CheckApp(Action<HalfMsgClientOptions> configure, Action onCheck) =>
        TestApp.StartAsync(
            new Uri("http://127.0.0.1:9"),
            _ => { },
            a => a.MapHalfMsgCheck("/halfmsg/check", (_, _, _) =>
            {
                onCheck();
                return Task.FromResult(LocalTransactionState.Commit);
            }),
            configure);

    private static async Task<(HttpStatusCode Status, string? Reason)> PostCheckAsync(Uri url, string? signature, string messageId = "m-1")
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(CheckBody, Encoding.UTF8, "application/json") };
        request.Headers.Add(HalfMsgHeaders.MessageId, messageId);
        if (signature is not null)
        {
            request.Headers.Add(HalfMsgHeaders.Signature, signature);
            request.Headers.Add(HalfMsgHeaders.Timestamp, DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
        }

        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        string? reason = null;
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            using var problem = JsonDocument.Parse(text);
            reason = problem.RootElement.GetProperty("reason").GetString();
        }

        return (response.StatusCode, reason);
    }

    private static string V2(string secret, string messageId, Uri url) =>
        HalfMsgSignature.CreateV2HeaderValue([secret], DateTimeOffset.UtcNow.ToUnixTimeSeconds(), messageId, url.ToString(), CheckBytes);

    private static string V1(string secret) =>
        HalfMsgSignature.CreateHeaderValue([secret], DateTimeOffset.UtcNow.ToUnixTimeSeconds(), CheckBytes);

    [Fact]
    public async Task Check_endpoint_verifies_v2_against_its_own_url_and_the_message_id_and_refuses_v1_when_told()
    {
        var checks = 0;
        await using var app = await CheckApp(o => o.AcceptV1Signatures = false, () => Interlocked.Increment(ref checks));
        var url = app.Url("/halfmsg/check");

        Assert.Equal((HttpStatusCode.OK, (string?)null), await PostCheckAsync(url, V2(BrokerFixture.AppSecret, "m-1", url)));
        Assert.Equal((HttpStatusCode.Unauthorized, "Mismatch"), await PostCheckAsync(url, V2(BrokerFixture.AppSecret, "m-1", new Uri("http://127.0.0.1:9/halfmsg/check"))));
        Assert.Equal((HttpStatusCode.Unauthorized, "Mismatch"), await PostCheckAsync(url, V2(BrokerFixture.AppSecret, "m-1", url), messageId: "m-2"));
        Assert.Equal((HttpStatusCode.Unauthorized, "Mismatch"), await PostCheckAsync(url, V2("another-receivers-secret", "m-1", url)));
        Assert.Equal((HttpStatusCode.Unauthorized, "V1NotAccepted"), await PostCheckAsync(url, V1(BrokerFixture.AppSecret)));
        Assert.Equal(1, checks);
    }

    [Fact]
    public async Task Check_endpoint_still_accepts_v1_by_default()
    {
        var checks = 0;
        await using var app = await CheckApp(_ => { }, () => Interlocked.Increment(ref checks));
        Assert.Equal((HttpStatusCode.OK, (string?)null), await PostCheckAsync(app.Url("/halfmsg/check"), V1(BrokerFixture.AppSecret)));
        Assert.Equal(1, checks);
    }

    [Fact]
    public async Task PublicBaseAddress_stands_for_scheme_host_and_path_base_in_the_signed_url()
    {
        await using var app = await CheckApp(o => o.PublicBaseAddress = new Uri("http://localhost:8443/svc/"), () => { });
        var url = app.Url("/halfmsg/check");

        Assert.Equal((HttpStatusCode.OK, (string?)null), await PostCheckAsync(url, V2(BrokerFixture.AppSecret, "m-1", new Uri("http://localhost:8443/svc/halfmsg/check"))));
        Assert.Equal((HttpStatusCode.Unauthorized, "Mismatch"), await PostCheckAsync(url, V2(BrokerFixture.AppSecret, "m-1", url)));
    }

    [Fact]
    public async Task RequireSignature_without_a_secret_stops_the_app_from_starting()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => CheckApp(
            o =>
            {
                o.SigningSecrets = [];
                o.RequireSignature = true;
            },
            () => { }));
        Assert.Contains("RequireSignature", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Options configured past AddHalfMsgClient's validation: the endpoint itself still refuses everything.</summary>
    [Fact]
    public async Task RequireSignature_without_a_secret_refuses_every_call_even_where_options_are_not_validated()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0));
        builder.Logging.SetMinimumLevel(LogLevel.Critical);
        builder.Services.Configure<HalfMsgClientOptions>(o => o.RequireSignature = true);
        await using var app = builder.Build();
        var checks = 0;
        app.MapHalfMsgCheck("/halfmsg/check", (_, _, _) =>
        {
            Interlocked.Increment(ref checks);
            return Task.FromResult(LocalTransactionState.Commit);
        });
        await app.StartAsync();
        var url = new Uri(TestApp.AddressOf(app.Services), "/halfmsg/check");

        Assert.Equal((HttpStatusCode.Unauthorized, "NoSecretConfigured"), await PostCheckAsync(url, null));
        Assert.Equal((HttpStatusCode.Unauthorized, "NoSecretConfigured"), await PostCheckAsync(url, V2("anything", "m-1", url)));
        Assert.Equal(0, checks);
        await app.StopAsync();
    }

    /// <summary>
    /// End to end: the broker signs pushes to a subscription with <c>signing: auto</c> using its own secret;
    /// the app, which requires v2 and does not know the broker-wide secrets, refuses them until it holds that secret.
    /// </summary>
    [Fact]
    public async Task Push_endpoint_accepts_the_brokers_v2_made_with_the_subscriptions_own_secret()
    {
        var topic = Names.Unique("signed");
        var group = Names.Unique("signed-consumer");
        var handled = new ConcurrentBag<string>();
        await using var app = await TestApp.StartAsync(
            broker.BaseAddress,
            _ => { },
            a => a.MapHalfMsgPush<Order>("/halfmsg/own", (delivery, _) =>
            {
                handled.Add(delivery.MessageId);
                return Task.CompletedTask;
            }),
            o =>
            {
                o.SigningSecrets = ["not-the-subscriptions-secret"];
                o.AcceptV1Signatures = false;
            });

        using var http = new HttpClient { BaseAddress = broker.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new("Bearer", KeyedBrokerFixture.AdminKey);
        using var put = await http.PutAsJsonAsync(
            $"/v1/consumer-groups/{group}/subscriptions/{topic}",
            new { push = new { url = app.Url("/halfmsg/own").ToString() }, signing = "auto" });
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        var secret = (await put.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("signingSecret").GetString()!;

        var messageId = (await broker.Client.SendAsync(topic, new Order("s-1", 1))).MessageId;
        await Eventually.UntilAsync(
            async () => (await broker.Api.GetMessageAsync(messageId)).Deliveries?.SingleOrDefault()?.LastError,
            error => error == "http 401",
            "the push to be refused without the subscription's secret");
        Assert.Empty(handled);

        app.Services.GetRequiredService<IOptions<HalfMsgClientOptions>>().Value.SigningSecrets = [secret];
        await Eventually.UntilAsync(
            async () => (await broker.Api.GetMessageAsync(messageId)).Deliveries?.SingleOrDefault()?.State,
            state => state == DeliveryState.Acked,
            "the push to be accepted with the subscription's secret");
        Assert.Equal([messageId], handled);
    }
}
