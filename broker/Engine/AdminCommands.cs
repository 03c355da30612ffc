using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

internal sealed class PutProducerGroup(ProducerGroup group) : StoreCommand<bool>
{
    /// <returns>True when the group is new.</returns>
    protected override bool Run(WriteContext ctx)
    {
        var created = ctx.Store.GetProducerGroup(group.Name) is null;
        ctx.Store.SaveProducerGroup(group);
        return created;
    }
}

internal sealed record PutSubscriptionResult(bool Created, Subscription Subscription);

/// <summary>Creates or replaces a subscription; a replaced one keeps its creation time and its backlog.</summary>
internal sealed class PutSubscription(Subscription subscription) : StoreCommand<PutSubscriptionResult>
{
    protected override PutSubscriptionResult Run(WriteContext ctx)
    {
        var existing = ctx.Deliveries.Find(subscription.Group, subscription.Topic)?.Subscription;
        var stored = existing is null ? subscription with { CreatedAt = ctx.Now } : subscription with { CreatedAt = existing.CreatedAt };
        ctx.Store.SaveSubscription(stored);
        ctx.AfterCommit(() => ctx.Deliveries.Upsert(stored));
        return new PutSubscriptionResult(existing is null, stored);
    }
}

/// <summary>
/// Deletes a subscription. Its live deliveries are dropped afterwards in chunks, through the
/// writer like every change, so a large backlog never becomes one huge transaction.
/// </summary>
internal sealed class DeleteSubscription(string group, string topic, StoreWriter writer) : StoreCommand<bool>
{
    private const int Chunk = 500;

    protected override bool Run(WriteContext ctx)
    {
        if (ctx.Deliveries.Find(group, topic) is null) return false;
        ctx.Store.DeleteSubscription(group, topic);
        ctx.AfterCommit(() =>
        {
            var ids = ctx.Deliveries.Remove(group, topic);
            foreach (var chunk in ids.Chunk(Chunk)) writer.Post(new DropDeliveries(group, chunk));
        });
        return true;
    }
}
