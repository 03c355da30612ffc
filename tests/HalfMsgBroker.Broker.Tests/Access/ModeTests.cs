using System.Net;
using System.Text;
using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;

namespace HalfMsgBroker.Tests.Access;

/// <summary>The three modes, the loopback Host rule, and the guard against browser simple requests.</summary>
public sealed class ModeTests
{
    private static BrokerFactory Broker(string? mode, string? adminKey = null) => new(new Dictionary<string, string?>
    {
        ["Broker:Auth:Mode"] = mode,
        ["Broker:Auth:AdminKey"] = adminKey,
    });

    /// <summary>A request as it arrives from a given address and Host, which an HttpClient cannot choose.</summary>
    private static async Task<(int Status, string Body)> Call(
        BrokerFactory broker, string method, string path, IPAddress from, string host = "localhost", string? contentType = null, string? authorization = null)
    {
        var context = await broker.Server.SendAsync(c =>
        {
            c.Request.Method = method;
            c.Request.Path = path;
            c.Request.Host = new HostString(host);
            c.Connection.RemoteIpAddress = from;
            if (contentType is not null)
            {
                c.Request.ContentType = contentType;
                c.Request.Body = new MemoryStream("{}"u8.ToArray());
            }
            if (authorization is not null) c.Request.Headers.Authorization = authorization;
        });
        using var reader = new StreamReader(context.Response.Body, Encoding.UTF8);
        return (context.Response.StatusCode, await reader.ReadToEndAsync());
    }

    [Fact]
    public async Task Protected_is_the_default_without_an_admin_key_and_serves_loopback_only()
    {
        await using var broker = Broker(null);
        Assert.Equal(200, (await Call(broker, "GET", "/v1/topics", IPAddress.Loopback)).Status);
        Assert.Equal(200, (await Call(broker, "GET", "/v1/topics", IPAddress.IPv6Loopback, "[::1]:8080")).Status);
        Assert.Equal(200, (await Call(broker, "GET", "/v1/topics", IPAddress.Parse("127.0.0.1"), "127.0.0.1:8080")).Status);

        var remote = await Call(broker, "GET", "/v1/topics", IPAddress.Parse("192.0.2.10"));
        Assert.Equal(401, remote.Status);
        Assert.Contains("Broker:Auth:AdminKey", remote.Body, StringComparison.Ordinal);
        Assert.Contains("unauthenticated", remote.Body, StringComparison.Ordinal);

        // Health needs no key from anywhere.
        Assert.Equal(200, (await Call(broker, "GET", "/health/live", IPAddress.Parse("192.0.2.10"))).Status);
    }

    [Theory]
    [InlineData("evil.example")]
    [InlineData("localhost.evil.example")]
    [InlineData("127.0.0.1.nip.io")]
    [InlineData("2130706433")]
    public async Task Protected_refuses_a_loopback_caller_that_names_another_host(string host)
    {
        // A DNS-rebinding page: the browser connects to 127.0.0.1 but sends the attacker's name as Host.
        await using var broker = Broker(null);
        var answer = await Call(broker, "GET", "/v1/topics", IPAddress.Loopback, host);
        Assert.Equal(401, answer.Status);
        Assert.Contains("DNS rebinding", answer.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Protected_accepts_keys_from_anywhere()
    {
        await using var broker = Broker("Protected", BrokerFactory.AdminKey);
        var (_, key) = await Keys.Create(broker.CreateClient(), "ops", "admin");
        Assert.Equal(200, (await Call(broker, "GET", "/v1/topics", IPAddress.Parse("192.0.2.10"), "broker.internal", authorization: "Bearer " + key)).Status);
    }

    [Fact]
    public async Task ApiKeys_is_the_default_with_an_admin_key_and_refuses_keyless_loopback()
    {
        await using var broker = Broker(null, BrokerFactory.AdminKey);
        Assert.Equal(401, (await Call(broker, "GET", "/v1/topics", IPAddress.Loopback)).Status);
        Assert.Equal(200, (await Call(broker, "GET", "/v1/topics", IPAddress.Loopback, authorization: "Bearer " + BrokerFactory.AdminKey)).Status);
        Assert.Equal(200, (await Call(broker, "GET", "/health/ready", IPAddress.Parse("192.0.2.10"))).Status);
    }

    [Fact]
    public async Task None_serves_everyone()
    {
        await using var broker = Broker("None");
        Assert.Equal(200, (await Call(broker, "GET", "/v1/topics", IPAddress.Parse("192.0.2.10"), "broker.internal")).Status);
    }

    [Fact]
    public async Task A_short_admin_key_stops_the_broker_at_start_with_the_rule()
    {
        await using var broker = Broker(null, "too-short");
        var e = Assert.ThrowsAny<Exception>(() => broker.CreateClient());
        Assert.Contains("at least 32 characters", e.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("text/plain")]
    [InlineData("multipart/form-data; boundary=x")]
    public async Task A_state_change_without_json_or_a_key_is_refused_before_it_runs(string? contentType)
    {
        await using var broker = Broker("None");
        using var client = broker.CreateAnonymousClient();
        await client.SendHalf("orders", "tx-csrf");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/transactions/tx-csrf/commit");
        if (contentType is not null) request.Content = new StringContent("a=b", Encoding.UTF8, contentType.Split(';')[0]);
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Contains("Content-Type: application/json", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("prepared", (await client.Transaction("tx-csrf")).Str("state"));

        // The same commit as a JSON request (a browser must ask first, and the broker never says yes) works.
        var json = await client.PostRaw("/v1/transactions/tx-csrf/commit", "", "application/json");
        Assert.Equal(HttpStatusCode.OK, json.Status);
    }
}
