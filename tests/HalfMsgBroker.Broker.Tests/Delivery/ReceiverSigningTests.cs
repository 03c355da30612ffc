using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Delivery;

/// <summary>
/// Secrets of their own for producer groups and subscriptions, and the v2 signature that binds a call
/// to the URL the broker called and the message it is about. Signatures are recomputed here from the
/// README's definition, not with the broker's code.
/// </summary>
public sealed class ReceiverSigningTests
{
    private const string Commit = "{\"state\":\"commit\"}";

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private static string Hmac(string secret, string prefix, byte[] body) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(prefix).Concat(body).ToArray()));

    private static string[] Values(TestReceiver.Received request, string scheme) =>
        request.Headers["HalfMsg-Signature"].Split(',').Where(v => v.StartsWith(scheme + "=", StringComparison.Ordinal)).ToArray();

    /// <summary>v2 = hex HMAC-SHA256 of "{timestamp}.{messageId}.{url}.{raw body}".</summary>
    private static bool VerifiesV2(TestReceiver.Received request, string secret, string url, string messageId) =>
        Values(request, "v2").Contains("v2=" + Hmac(secret, $"{request.Headers["HalfMsg-Timestamp"]}.{messageId}.{url}.", request.Raw));

    private static bool VerifiesV1(TestReceiver.Received request, string secret) =>
        Values(request, "v1").Contains("v1=" + Hmac(secret, request.Headers["HalfMsg-Timestamp"] + ".", request.Raw));

    private static async Task<TestReceiver.Received> PushOf(TestReceiver receiver, string messageId) =>
        await Eventually.Until(
            () => Task.FromResult(receiver.Requests.FirstOrDefault(r => r.Body["messageId"]?.GetValue<string>() == messageId)),
            r => r is not null,
            $"the push of {messageId}") ?? throw new InvalidOperationException();

    private static string Secret(Http.Answer answer)
    {
        var secret = answer.Json.Str("signingSecret");
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        Assert.Equal(32, Convert.FromBase64String(secret["whsec_".Length..].Replace('-', '+').Replace('_', '/') + "=").Length);
        return secret;
    }

    [Fact]
    public async Task Signing_auto_on_a_subscription_gives_a_secret_once_and_pushes_carry_a_v2_for_that_url_and_message()
    {
        await using var factory = new BrokerFactory();
        using var c = factory.CreateClient();
        await using var first = await TestReceiver.Answering(204);
        await using var second = await TestReceiver.Answering(204);
        var topic = Unique("t");

        var created = await c.Put($"/v1/consumer-groups/first/subscriptions/{topic}", new { push = new { url = first.Url }, signing = "auto" });
        Assert.Equal(HttpStatusCode.Created, created.Status);
        Assert.Equal("auto", created.Json.Str("signing"));
        var firstSecret = Secret(created);
        var fingerprint = created.Json.Str("signingSecretFingerprint");
        Assert.Equal(16, fingerprint.Length);
        Assert.DoesNotContain(firstSecret, fingerprint, StringComparison.Ordinal);

        // Shown once: not by GET, not by a later PUT, which keeps the secret whether it says auto or nothing.
        var group = (await c.Get("/v1/consumer-groups/first")).Json["subscriptions"]!.AsArray().Single()!;
        Assert.Null(group["signingSecret"]);
        Assert.Equal("auto", group.Str("signing"));
        Assert.Equal(fingerprint, group.Str("signingSecretFingerprint"));
        Assert.DoesNotContain(firstSecret, (await c.Get("/v1/consumer-groups/first")).Raw, StringComparison.Ordinal);
        foreach (var again in new object[] { new { push = new { url = first.Url }, signing = "auto" }, new { push = new { url = first.Url } } })
        {
            var replaced = await c.Put($"/v1/consumer-groups/first/subscriptions/{topic}", again);
            Assert.Equal(HttpStatusCode.OK, replaced.Status);
            Assert.Null(replaced.Json["signingSecret"]);
            Assert.Equal(fingerprint, replaced.Json.Str("signingSecretFingerprint"));
        }

        var secondSecret = Secret(await c.Put($"/v1/consumer-groups/second/subscriptions/{topic}", new { push = new { url = second.Url }, signing = "auto" }));
        Assert.NotEqual(firstSecret, secondSecret);

        var messageId = await c.Send(topic);
        var toFirst = await PushOf(first, messageId);
        var toSecond = await PushOf(second, messageId);

        Assert.Equal(messageId, toFirst.Headers["HalfMsg-Message-Id"]);
        Assert.Empty(Values(toFirst, "v1")); // no broker-wide secret: nothing for v1
        Assert.Single(Values(toFirst, "v2"));
        Assert.True(VerifiesV2(toFirst, firstSecret, first.Url, messageId));
        Assert.False(VerifiesV2(toFirst, secondSecret, first.Url, messageId)); // another receiver's secret
        Assert.False(VerifiesV2(toFirst, firstSecret, second.Url, messageId)); // replayed to another URL
        Assert.False(VerifiesV2(toFirst, firstSecret, first.Url, Guid.CreateVersion7().ToString())); // another message
        Assert.True(VerifiesV2(toSecond, secondSecret, second.Url, messageId));
        Assert.False(VerifiesV2(toSecond, firstSecret, second.Url, messageId));
    }

    [Fact]
    public async Task Signing_auto_on_a_producer_group_signs_its_check_backs_alongside_the_broker_wide_secret()
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Signing:Secret"] = "broker-secret" });
        using var c = factory.CreateClient();
        await using var first = await TestReceiver.Answering(200, Commit);
        await using var second = await TestReceiver.Answering(200, Commit);
        var firstGroup = Unique("pg");
        var secondGroup = Unique("pg");

        var created = await c.Put($"/v1/producer-groups/{firstGroup}", new { checkUrl = first.Url, signing = "auto" });
        Assert.Equal(HttpStatusCode.Created, created.Status);
        var firstSecret = Secret(created);
        var view = await c.Get($"/v1/producer-groups/{firstGroup}");
        Assert.Null(view.Json["signingSecret"]);
        Assert.DoesNotContain(firstSecret, view.Raw, StringComparison.Ordinal);
        Assert.Equal(created.Json.Str("signingSecretFingerprint"), view.Json.Str("signingSecretFingerprint"));
        var secondSecret = Secret(await c.Put($"/v1/producer-groups/{secondGroup}", new { checkUrl = second.Url, signing = "auto" }));

        var topic = Unique("t");
        var messageId = await c.SendHalf(topic, Unique("tx"), group: firstGroup);
        await Eventually.Until(() => !first.Requests.IsEmpty, "a check-back");
        Assert.True(first.Requests.TryPeek(out var check));

        Assert.Equal(messageId, check.Headers["HalfMsg-Message-Id"]);
        Assert.Equal(messageId, check.Body.Str("messageId"));
        Assert.Equal(new[] { "v1", "v2", "v2" }, check.Headers["HalfMsg-Signature"].Split(',').Select(v => v[..2]).ToArray());
        Assert.True(VerifiesV1(check, "broker-secret")); // existing receivers keep working
        Assert.True(VerifiesV2(check, "broker-secret", first.Url, messageId));
        Assert.True(VerifiesV2(check, firstSecret, first.Url, messageId));
        Assert.False(VerifiesV2(check, secondSecret, first.Url, messageId));
        Assert.False(VerifiesV2(check, firstSecret, second.Url, messageId));
        Assert.False(VerifiesV1(check, firstSecret)); // a receiver's own secret signs v2 only
        Assert.Empty(second.Requests);
    }

    [Fact]
    public async Task Rotation_signs_with_both_secrets_during_the_overlap_and_with_the_new_one_after_it()
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Signing:RotationOverlap"] = "00:00:05" });
        using var c = factory.CreateClient();
        await using var receiver = await TestReceiver.Answering(204);
        var topic = Unique("t");
        var path = $"/v1/consumer-groups/g/subscriptions/{topic}";
        var s1 = Secret(await c.Put(path, new { push = new { url = receiver.Url }, signing = "auto" }));

        var rotated = await c.Post(path + "/signing-secret/rotate");
        Assert.Equal(HttpStatusCode.OK, rotated.Status);
        var s2 = Secret(rotated);
        Assert.NotEqual(s1, s2);
        Assert.NotNull(rotated.Json["previousSigningSecretExpiresAt"]);
        var m1 = await c.Send(topic);
        var push1 = await PushOf(receiver, m1);
        Assert.Equal(2, Values(push1, "v2").Length);
        Assert.True(VerifiesV2(push1, s2, receiver.Url, m1));
        Assert.True(VerifiesV2(push1, s1, receiver.Url, m1));

        // A second rotation ends the first one's overlap at once: s1 no longer signs.
        var s3 = Secret(await c.Post(path + "/signing-secret/rotate"));
        var m2 = await c.Send(topic);
        var push2 = await PushOf(receiver, m2);
        Assert.True(VerifiesV2(push2, s3, receiver.Url, m2));
        Assert.True(VerifiesV2(push2, s2, receiver.Url, m2));
        Assert.False(VerifiesV2(push2, s1, receiver.Url, m2));
        Assert.DoesNotContain(s3, (await c.Get("/v1/consumer-groups/g")).Raw, StringComparison.Ordinal);

        // After the overlap only s3 signs: keep sending until a push shows it.
        var late = await Eventually.Until(
            async () =>
            {
                var id = await c.Send(topic);
                return (Id: id, Push: await PushOf(receiver, id));
            },
            p => Values(p.Push, "v2").Length == 1,
            "a push signed with the new secret only",
            TimeSpan.FromSeconds(30));
        Assert.True(VerifiesV2(late.Push, s3, receiver.Url, late.Id));
        Assert.False(VerifiesV2(late.Push, s2, receiver.Url, late.Id));
        var group = (await c.Get("/v1/consumer-groups/g")).Json["subscriptions"]!.AsArray().Single()!;
        Assert.Null(group["previousSigningSecretExpiresAt"]);
    }

    [Fact]
    public async Task Producer_group_rotation_signing_none_and_bad_values()
    {
        await using var factory = new BrokerFactory();
        using var c = factory.CreateClient();
        await using var receiver = await TestReceiver.Answering(200, Commit);
        var pg = Unique("pg");

        Assert.Equal("producer-group-not-found", (await c.Post($"/v1/producer-groups/{pg}/signing-secret/rotate")).Code);
        Assert.Equal("subscription-not-found", (await c.Post($"/v1/consumer-groups/g/subscriptions/{Unique("t")}/signing-secret/rotate")).Code);

        var plain = await c.Put($"/v1/producer-groups/{pg}", new { checkUrl = receiver.Url });
        Assert.Equal("none", plain.Json.Str("signing"));
        Assert.Null(plain.Json["signingSecret"]);
        var notEnabled = await c.Post($"/v1/producer-groups/{pg}/signing-secret/rotate");
        Assert.Equal((HttpStatusCode.Conflict, "signing-not-enabled"), (notEnabled.Status, notEnabled.Code));
        Assert.Contains("\"signing\": \"auto\"", notEnabled.Json.Str("detail"), StringComparison.Ordinal);

        var first = Secret(await c.Put($"/v1/producer-groups/{pg}", new { checkUrl = receiver.Url, signing = "auto" }));
        var rotated = await c.Post($"/v1/producer-groups/{pg}/signing-secret/rotate");
        var second = Secret(rotated);
        Assert.NotEqual(first, second);
        Assert.Equal(rotated.Json.Str("signingSecretFingerprint"), (await c.Get($"/v1/producer-groups/{pg}")).Json.Str("signingSecretFingerprint"));
        var kept = await c.Put($"/v1/producer-groups/{pg}", new { checkUrl = receiver.Url, checkTimeoutMs = 2000 });
        Assert.Equal(("auto", rotated.Json.Str("signingSecretFingerprint"), 2000), (kept.Json.Str("signing"), kept.Json.Str("signingSecretFingerprint"), kept.Json.Int("checkTimeoutMs")));
        Assert.Null(kept.Json["signingSecret"]);

        var bad = await c.Put($"/v1/producer-groups/{pg}", new { checkUrl = "http://127.0.0.1:9/elsewhere", signing = "yes" });
        Assert.Equal((HttpStatusCode.BadRequest, "invalid-field"), (bad.Status, bad.Code));
        Assert.NotNull(bad.Json["errors"]!["signing"]);
        var unchanged = (await c.Get($"/v1/producer-groups/{pg}")).Json;
        Assert.Equal((receiver.Url, "auto"), (unchanged.Str("checkUrl"), unchanged.Str("signing")));

        var removed = await c.Put($"/v1/producer-groups/{pg}", new { checkUrl = receiver.Url, signing = "none" });
        Assert.Equal(HttpStatusCode.OK, removed.Status);
        Assert.Equal("none", removed.Json.Str("signing"));
        Assert.Null(removed.Json["signingSecretFingerprint"]?.GetValue<string>());

        // No secret of its own and no broker-wide one: the check-back is unsigned, as before.
        await c.SendHalf(Unique("t"), Unique("tx"), group: pg);
        await Eventually.Until(() => !receiver.Requests.IsEmpty, "a check-back");
        Assert.True(receiver.Requests.TryPeek(out var check));
        Assert.False(check.Headers.ContainsKey("HalfMsg-Signature"));
        Assert.False(check.Headers.ContainsKey("HalfMsg-Timestamp"));
    }

    [Fact]
    public async Task A_subscription_keeps_its_secret_when_it_changes_from_push_to_pull_and_back()
    {
        await using var factory = new BrokerFactory();
        using var c = factory.CreateClient();
        await using var receiver = await TestReceiver.Answering(204);
        var topic = Unique("t");
        var path = $"/v1/consumer-groups/g/subscriptions/{topic}";
        var secret = Secret(await c.Put(path, new { push = new { url = receiver.Url }, signing = "auto" }));
        Assert.Equal("auto", (await c.Put(path, new JsonObject())).Json.Str("signing"));
        await c.Subscribe("g", topic, new { push = new { url = receiver.Url } });

        var messageId = await c.Send(topic);
        Assert.True(VerifiesV2(await PushOf(receiver, messageId), secret, receiver.Url, messageId));
    }
}
