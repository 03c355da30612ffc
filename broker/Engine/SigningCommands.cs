using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

/// <summary>What a PUT asks of a producer group's or subscription's own signing secret.</summary>
internal enum SigningChange
{
    /// <summary><c>signing</c> absent: keep whatever the group has (dropping it would break its receiver).</summary>
    Keep,

    /// <summary><c>"auto"</c>: create a secret unless there is one already.</summary>
    Auto,

    /// <summary><c>"none"</c>: remove it (and a previous one still in its rotation overlap).</summary>
    Remove,
}

internal static class SigningChanges
{
    /// <returns>The secret to store, and the new secret's text when this change created one (shown once).</returns>
    public static (ReceiverSecret? Stored, string? Created) Apply(ReceiverSecret? existing, SigningChange change, long now)
    {
        switch (change)
        {
            case SigningChange.Remove:
                return (null, null);
            case SigningChange.Auto when existing is null:
                var created = ReceiverSecret.Create(now);
                return (created, created.Secret);
            default:
                return (existing, null);
        }
    }
}

internal enum RotateStatus { Rotated, NotFound, NotEnabled }

internal sealed record RotateResult<T>(RotateStatus Status, T? Item) where T : class;

/// <summary>Gives a producer group a new secret; the current one keeps signing for <paramref name="overlap"/>.</summary>
internal sealed class RotateProducerGroupSecret(string name, TimeSpan overlap) : StoreCommand<RotateResult<ProducerGroup>>
{
    protected override RotateResult<ProducerGroup> Run(WriteContext ctx)
    {
        var group = ctx.Store.GetProducerGroup(name);
        if (group is null) return new(RotateStatus.NotFound, null);
        if (group.Signing is null) return new(RotateStatus.NotEnabled, group);
        var rotated = group with { Signing = group.Signing.Rotate(ctx.Now, overlap) };
        ctx.Store.SaveProducerGroup(rotated);
        return new(RotateStatus.Rotated, rotated);
    }
}

/// <summary>Gives a subscription a new secret; the current one keeps signing for <paramref name="overlap"/>.</summary>
internal sealed class RotateSubscriptionSecret(string group, string topic, TimeSpan overlap) : StoreCommand<RotateResult<Subscription>>
{
    public override bool NeedsPublishedState => true;

    protected override RotateResult<Subscription> Run(WriteContext ctx)
    {
        var subscription = ctx.SubscriptionToChange(group, topic);
        if (subscription is null) return new(RotateStatus.NotFound, null);
        if (subscription.Signing is null) return new(RotateStatus.NotEnabled, subscription);
        var rotated = subscription with { Signing = subscription.Signing.Rotate(ctx.Now, overlap) };
        ctx.Store.SaveSubscription(rotated);
        ctx.AfterCommit(() => ctx.Deliveries.Upsert(rotated));
        return new(RotateStatus.Rotated, rotated);
    }
}
