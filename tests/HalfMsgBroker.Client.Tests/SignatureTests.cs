using System.Net;
using System.Net.Http.Json;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Client.Tests;

public sealed class SignatureTests
{
    private static readonly byte[] Body = Encoding.UTF8.GetBytes("{\"transactionId\":\"t-1\"}");
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);

    [Fact]
    public void Compute_matches_an_independent_hmac_of_timestamp_dot_body()
    {
        using var hmac = new System.Security.Cryptography.HMACSHA256(Encoding.UTF8.GetBytes("s3cret"));
        var expected = Convert.ToHexStringLower(hmac.ComputeHash(Encoding.UTF8.GetBytes("1700000000." + Encoding.UTF8.GetString(Body))));
        Assert.Equal(expected, HalfMsgSignature.Compute("s3cret", 1_700_000_000, Body));
        Assert.Equal(64, expected.Length);
    }

    [Fact]
    public void Verify_accepts_any_of_several_signatures_and_secrets_during_rotation()
    {
        var header = HalfMsgSignature.CreateHeaderValue(["old", "new"], Now.ToUnixTimeSeconds(), Body);
        Assert.StartsWith("v1=", header, StringComparison.Ordinal);
        Assert.Contains(",v1=", header, StringComparison.Ordinal);
        Assert.Equal(SignatureVerification.Valid, HalfMsgSignature.Verify(header, "1700000000", Body, ["new"], TimeSpan.FromMinutes(5), Now));
        Assert.Equal(SignatureVerification.Valid, HalfMsgSignature.Verify(header, "1700000000", Body, ["other", "old"], TimeSpan.FromMinutes(5), Now));
    }

    [Fact]
    public void Verify_rejects_wrong_secret_tampered_body_stale_and_malformed()
    {
        var ts = Now.ToUnixTimeSeconds();
        var header = HalfMsgSignature.CreateHeaderValue(["new"], ts, Body);
        Assert.Equal(SignatureVerification.Mismatch, HalfMsgSignature.Verify(header, "1700000000", Body, ["wrong"], TimeSpan.FromMinutes(5), Now));
        Assert.Equal(SignatureVerification.Mismatch, HalfMsgSignature.Verify(header, "1700000000", Encoding.UTF8.GetBytes("{}"), ["new"], TimeSpan.FromMinutes(5), Now));
        Assert.Equal(SignatureVerification.Stale, HalfMsgSignature.Verify(header, "1700000000", Body, ["new"], TimeSpan.FromMinutes(5), Now.AddMinutes(6)));
        Assert.Equal(SignatureVerification.Stale, HalfMsgSignature.Verify(header, "1700000000", Body, ["new"], TimeSpan.FromMinutes(5), Now.AddMinutes(-6)));
        Assert.Equal(SignatureVerification.Valid, HalfMsgSignature.Verify(header, "1700000000", Body, ["new"], TimeSpan.FromMinutes(5), Now.AddMinutes(4)));
        Assert.Equal(SignatureVerification.Missing, HalfMsgSignature.Verify(null, "1700000000", Body, ["new"], TimeSpan.FromMinutes(5), Now));
        Assert.Equal(SignatureVerification.Missing, HalfMsgSignature.Verify(header, "", Body, ["new"], TimeSpan.FromMinutes(5), Now));
        Assert.Equal(SignatureVerification.Malformed, HalfMsgSignature.Verify(header, "soon", Body, ["new"], TimeSpan.FromMinutes(5), Now));
        Assert.Equal(SignatureVerification.Malformed, HalfMsgSignature.Verify("v1=zz", "1700000000", Body, ["new"], TimeSpan.FromMinutes(5), Now));
        Assert.Equal(SignatureVerification.Malformed, HalfMsgSignature.Verify("v0=abcd", "1700000000", Body, ["new"], TimeSpan.FromMinutes(5), Now));
    }

    [Fact]
    public void ComputeV2_matches_an_independent_hmac_of_timestamp_message_id_url_and_body()
    {
        using var hmac = new System.Security.Cryptography.HMACSHA256(Encoding.UTF8.GetBytes("whsec_abc"));
        var signed = "1700000000.m-1.http://127.0.0.1:5001/halfmsg/check." + Encoding.UTF8.GetString(Body);
        var expected = Convert.ToHexStringLower(hmac.ComputeHash(Encoding.UTF8.GetBytes(signed)));
        Assert.Equal(expected, HalfMsgSignature.ComputeV2("whsec_abc", 1_700_000_000, "m-1", "http://127.0.0.1:5001/halfmsg/check", Body));
        Assert.NotEqual(expected, HalfMsgSignature.Compute("whsec_abc", 1_700_000_000, Body));
    }

    [Fact]
    public void Verify_v2_is_valid_only_for_the_url_and_message_id_it_was_made_for()
    {
        const string url = "http://127.0.0.1:5001/halfmsg/check";
        var header = HalfMsgSignature.CreateV2HeaderValue(["previous", "current"], Now.ToUnixTimeSeconds(), "m-1", url, Body);
        SignatureVerification Check(string messageId, string atUrl, string secret, bool acceptV1 = true) =>
            HalfMsgSignature.Verify(header, "1700000000", Body, messageId, atUrl, [secret], TimeSpan.FromMinutes(5), Now, acceptV1);

        Assert.Equal(SignatureVerification.Valid, Check("m-1", url, "current", acceptV1: false));
        Assert.Equal(SignatureVerification.Valid, Check("m-1", url, "previous"));
        Assert.Equal(SignatureVerification.Mismatch, Check("m-1", "http://127.0.0.1:5002/halfmsg/check", "current"));
        Assert.Equal(SignatureVerification.Mismatch, Check("m-1", url + "?x=1", "current"));
        Assert.Equal(SignatureVerification.Mismatch, Check("m-2", url, "current"));
        Assert.Equal(SignatureVerification.Mismatch, Check("m-1", url, "other"));
        Assert.Equal(SignatureVerification.Stale, HalfMsgSignature.Verify(header, "1700000000", Body, "m-1", url, ["current"], TimeSpan.FromMinutes(5), Now.AddMinutes(6)));
        Assert.Equal(SignatureVerification.Malformed, HalfMsgSignature.Verify("v2=zz", "1700000000", Body, "m-1", url, ["current"], TimeSpan.FromMinutes(5), Now));

        // The v1-only overload cannot check v2 (it knows no URL): a v2-only header has nothing it can verify.
        Assert.Equal(SignatureVerification.Malformed, HalfMsgSignature.Verify(header, "1700000000", Body, ["current"], TimeSpan.FromMinutes(5), Now));
    }

    [Fact]
    public void Verify_accepts_v1_by_default_and_refuses_it_when_v2_is_required()
    {
        const string url = "http://127.0.0.1:5001/push";
        var ts = Now.ToUnixTimeSeconds();
        var v1 = HalfMsgSignature.CreateHeaderValue(["s"], ts, Body);
        SignatureVerification Check(string header, bool acceptV1) =>
            HalfMsgSignature.Verify(header, "1700000000", Body, "m-1", url, ["s"], TimeSpan.FromMinutes(5), Now, acceptV1);

        Assert.Equal(SignatureVerification.Valid, Check(v1, acceptV1: true));
        Assert.Equal(SignatureVerification.V1NotAccepted, Check(v1, acceptV1: false));

        // What the broker sends with a broker-wide secret: v1 and v2; v2 carries it when v1 is refused...
        Assert.Equal(SignatureVerification.Valid, Check(v1 + "," + HalfMsgSignature.CreateV2HeaderValue(["s"], ts, "m-1", url, Body), acceptV1: false));

        // ...but not when the v2 was made for another URL, even though the v1 next to it matches.
        var elsewhere = v1 + "," + HalfMsgSignature.CreateV2HeaderValue(["s"], ts, "m-1", "http://127.0.0.1:5002/push", Body);
        Assert.Equal(SignatureVerification.Mismatch, Check(elsewhere, acceptV1: false));
        Assert.Equal(SignatureVerification.Valid, Check(elsewhere, acceptV1: true));
    }

    /// <summary>The check endpoint on a real listener: good signatures pass, bad/stale/missing ones get a 401 problem.</summary>
    [Fact]
    public async Task Check_endpoint_accepts_good_and_rejects_bad_stale_and_missing_signatures()
    {
        var checks = 0;
        await using var app = await TestApp.StartAsync(
            new Uri("http://127.0.0.1:9"),
            b => { },
            a => a.MapHalfMsgCheck("/halfmsg/check", (request, _, _) =>
            {
                Interlocked.Increment(ref checks);
                return Task.FromResult(request.TransactionId == "t-1" ? LocalTransactionState.Commit : LocalTransactionState.Rollback);
            }));
        using var http = new HttpClient();
        var body = """{"transactionId":"t-1","messageId":"m-1","topic":"orders","producerGroup":"g","body":{"a":1},"checkTimes":1,"bornAt":"2026-01-01T00:00:00Z"}""";

        async Task<HttpResponseMessage> Post(string? signature, long? timestamp)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, app.Url("/halfmsg/check"))
            {
                Content = new StringContent(body, Encoding.UTF8, "application/json"),
            };
            if (signature is not null)
            {
                request.Headers.Add(HalfMsgHeaders.Signature, signature);
            }

            if (timestamp is not null)
            {
                request.Headers.Add(HalfMsgHeaders.Timestamp, timestamp.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            return await http.SendAsync(request);
        }

        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var bytes = Encoding.UTF8.GetBytes(body);

        using (var good = await Post(HalfMsgSignature.CreateHeaderValue(["old-secret", BrokerFixture.AppSecret], now, bytes), now))
        {
            Assert.Equal(HttpStatusCode.OK, good.StatusCode);
            var answer = await good.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
            Assert.Equal("commit", answer.GetProperty("state").GetString());
        }

        Assert.Equal(1, checks);

        using (var wrong = await Post(HalfMsgSignature.CreateHeaderValue(["old-secret"], now, bytes), now))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
            Assert.Equal("application/problem+json", wrong.Content.Headers.ContentType?.MediaType);
            var problem = await wrong.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
            Assert.Equal("invalid-signature", problem.GetProperty("code").GetString());
        }

        var stale = now - 301;
        using (var old = await Post(HalfMsgSignature.CreateHeaderValue([BrokerFixture.AppSecret], stale, bytes), stale))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, old.StatusCode);
        }

        using (var missing = await Post(null, null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        }

        Assert.Equal(1, checks); // the checker never ran for a rejected call
    }
}
