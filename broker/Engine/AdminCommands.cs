using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

/// <param name="CreatedSecret">The signing secret this PUT created, to be shown in its answer only.</param>
internal sealed record PutProducerGroupResult(bool Created, ProducerGroup Group, string? CreatedSecret);

/// <summary>
/// Creates or replaces a producer group; its signing secret changes only as <paramref name="signing"/>
/// says, and check limits it does not set stay as they were (an SDK re-registering its check URL at
/// start-up must not undo an operator's limits).
/// </summary>
internal sealed class PutProducerGroup(ProducerGroup group, SigningChange signing) : StoreCommand<PutProducerGroupResult>
{
    protected override PutProducerGroupResult Run(WriteContext ctx)
    {
        var existing = ctx.Store.GetProducerGroup(group.Name);
        var (secret, createdSecret) = SigningChanges.Apply(existing?.Signing, signing, ctx.Now);
        var stored = group with
        {
            Signing = secret,
            MaxChecksInFlight = group.MaxChecksInFlight ?? existing?.MaxChecksInFlight,
            MaxChecksPerSecond = group.MaxChecksPerSecond ?? existing?.MaxChecksPerSecond,
        };
        ctx.Store.SaveProducerGroup(stored);
        return new PutProducerGroupResult(existing is null, stored, createdSecret);
    }
}

internal sealed record PutSubscriptionResult(bool Created, Subscription Subscription, string? CreatedSecret);

/// <summary>
/// Creates or replaces a subscription; a replaced one keeps its creation time, its backlog and
/// whether it is paused (an operator's pause outlives a client re-registering), and its signing
/// secret unless <paramref name="signing"/> says otherwise.
/// </summary>
internal sealed class PutSubscription(Subscription subscription, SigningChange signing) : StoreCommand<PutSubscriptionResult>
{
    public override bool NeedsPublishedState => true;

    protected override PutSubscriptionResult Run(WriteContext ctx)
    {
        var existing = ctx.SubscriptionToChange(subscription.Group, subscription.Topic);
        var (secret, createdSecret) = SigningChanges.Apply(existing?.Signing, signing, ctx.Now);
        var stored = subscription with { CreatedAt = existing?.CreatedAt ?? ctx.Now, Signing = secret, Paused = existing?.Paused ?? false };
        ctx.Store.SaveSubscription(stored);
        ctx.AfterCommit(() => ctx.Deliveries.Upsert(stored));
        return new PutSubscriptionResult(existing is null, stored, createdSecret);
    }
}

/// <summary>
/// Deletes a subscription. Its live deliveries are dropped afterwards in chunks, through the
/// writer like every change, so a large backlog never becomes one huge transaction.
/// </summary>
internal sealed class DeleteSubscription(string group, string topic, StoreWriter writer) : StoreCommand<bool>
{
    public override bool NeedsPublishedState => true;

    private const int Chunk = 500;

    protected override bool Run(WriteContext ctx)
    {
        if (ctx.SubscriptionToChange(group, topic) is null) return false;
        ctx.Store.DeleteSubscription(group, topic);
        ctx.AfterCommit(() =>
        {
            var ids = ctx.Live.Remove(group, topic);
            foreach (var chunk in ids.Chunk(Chunk)) writer.Post(new DropDeliveries(group, chunk));
        });
        return true;
    }
}
