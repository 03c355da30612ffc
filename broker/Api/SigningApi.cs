using HalfMsgBroker.Access;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Api;

/// <summary>
/// The signing secrets of producer groups and subscriptions: the <c>signing</c> field of their PUTs,
/// the fields their views show, and rotation (README, "Signed callbacks").
/// </summary>
internal static class SigningApi
{
    /// <summary>How a view shows a secret: whether there is one and which, never the secret itself unless just created.</summary>
    public readonly record struct Fields(string Signing, string? Secret, DateTime? CreatedAt, string? Fingerprint, DateTime? PreviousExpiresAt)
    {
        public static Fields Of(ReceiverSecret? signing, string? shownOnce, long now) => signing is null
            ? new("none", null, null, null, null)
            : new("auto", shownOnce, Times.ToUtc(signing.CreatedAt), signing.Fingerprint,
                signing.PreviousSignsAt(now) ? Times.ToUtc(signing.PreviousUntil) : null);
    }

    public static SigningChange Change(FieldErrors errors, string? signing)
    {
        switch (signing)
        {
            case null: return SigningChange.Keep;
            case "auto": return SigningChange.Auto;
            case "none": return SigningChange.Remove;
            default:
                errors.Add("signing", "must be \"auto\" (a signing secret of its own) or \"none\" (remove it); omit it to keep the current one");
                return SigningChange.Keep;
        }
    }

    /// <summary>What the audit trail says of a signing change: never the secret, only that one was made or removed.</summary>
    public static string AuditNote(SigningChange change, string? createdSecret) =>
        createdSecret is not null ? " signing=auto (new secret)" : change == SigningChange.Remove ? " signing=none" : "";

    public static async Task<IResult> RotateProducerGroupAsync(
        string group, HttpContext http, StoreWriter writer, AuditLog audit, IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("producerGroup", group);
        var result = await writer.Submit(new RotateProducerGroupSecret(group, options.Value.Signing.RotationOverlap), ct);
        if (result.Status == RotateStatus.Rotated) audit.Record(http.Caller(), "producer-group.rotate-signing-secret", group);
        return result.Status switch
        {
            RotateStatus.NotFound => Problems.NotFound("producer-group-not-found",
                $"Producer group '{group}' has not been registered; PUT /v1/producer-groups/{group} first."),
            RotateStatus.NotEnabled => NotEnabled(
                $"Producer group '{group}' has no signing secret of its own to rotate; PUT it with \"signing\": \"auto\" to create one."),
            _ => TypedResults.Json(
                SubscriptionApi.ToView(result.Item!, result.Item!.Signing!.Secret, Now(time), options.Value.Transactions), BrokerJsonContext.Default.ProducerGroupView),
        };
    }

    public static async Task<IResult> RotateSubscriptionAsync(
        string group, string topic, HttpContext http, StoreWriter writer, AuditLog audit, IOptions<BrokerOptions> options, TimeProvider time, CancellationToken ct)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        if (!Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        var result = await writer.Submit(new RotateSubscriptionSecret(group, topic, options.Value.Signing.RotationOverlap), ct);
        if (result.Status == RotateStatus.Rotated) audit.Record(http.Caller(), "subscription.rotate-signing-secret", $"{group}/{topic}");
        return result.Status switch
        {
            RotateStatus.NotFound => Problems.NotFound("subscription-not-found", $"Consumer group '{group}' has no subscription to topic '{topic}'."),
            RotateStatus.NotEnabled => NotEnabled(
                $"The subscription of '{group}' to '{topic}' has no signing secret of its own to rotate; PUT it with \"signing\": \"auto\" to create one."),
            _ => TypedResults.Json(
                SubscriptionApi.ToView(result.Item!, null, result.Item!.Signing!.Secret, Now(time)), BrokerJsonContext.Default.SubscriptionView),
        };
    }

    private static IResult NotEnabled(string detail) => Problems.Conflict("signing-not-enabled", detail);

    private static long Now(TimeProvider time) => time.GetUtcNow().ToUnixTimeMilliseconds();
}
