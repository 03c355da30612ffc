using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

internal enum PauseStatus
{
    NotFound,
    NotPush,
    Changed,
    Unchanged,
}

internal sealed record PauseResult(PauseStatus Status, Subscription? Subscription);

/// <summary>
/// Pauses or resumes a push subscription: stored like every subscription change, so a paused
/// subscription stays paused across a restart. While paused the push dispatcher hands nothing out
/// and deliveries accumulate; resuming republishes the subscription, which restarts its dispatch.
/// </summary>
internal sealed class PauseSubscription(string group, string topic, bool paused) : StoreCommand<PauseResult>
{
    public override bool NeedsPublishedState => true;

    protected override PauseResult Run(WriteContext ctx)
    {
        var existing = ctx.SubscriptionToChange(group, topic);
        if (existing is null) return new PauseResult(PauseStatus.NotFound, null);
        if (existing.Push is null) return new PauseResult(PauseStatus.NotPush, existing);
        if (existing.Paused == paused) return new PauseResult(PauseStatus.Unchanged, existing);

        var stored = existing with { Paused = paused };
        ctx.Store.SaveSubscription(stored);
        ctx.AfterCommit(() => ctx.Deliveries.Upsert(stored));
        return new PauseResult(PauseStatus.Changed, stored);
    }
}

internal enum CheckNowStatus
{
    NotFound,
    NotPrepared,
    Scheduled,
}

internal sealed record CheckNowResult(CheckNowStatus Status, MessageSnapshot? Message, long NextCheckAt);

/// <summary>
/// Brings a prepared message's next check-back forward to now. The due time is stored (the message's
/// place in the check index moves), so it holds across a restart like any other due time, and the
/// check-back loop is woken once the change is durable. A check already in flight is not waited for:
/// the new check takes the next number, so the older one's late answer is ignored.
/// </summary>
/// <param name="mayCheck">Whether the caller may act on this producer group; one it may not is "not found".</param>
internal sealed class CheckNow(string transactionId, Func<string?, bool> mayCheck) : StoreCommand<CheckNowResult>
{
    protected override CheckNowResult Run(WriteContext ctx)
    {
        var message = ctx.Messages.FindByTransactionId(transactionId);
        if (message is null || !mayCheck(message.ProducerGroup)) return new CheckNowResult(CheckNowStatus.NotFound, null, 0);
        if (message.State != MessageState.Prepared)
        {
            return new CheckNowResult(CheckNowStatus.NotPrepared, MessageSnapshot.Of(message), 0);
        }

        if (message.NextCheckAt > ctx.Now)
        {
            message.NextCheckAt = ctx.Now;
            ctx.Messages.Update(message);
        }
        var due = message.NextCheckAt;
        ctx.AfterCommit(() => ctx.Checks.Nudge(due));
        return new CheckNowResult(CheckNowStatus.Scheduled, MessageSnapshot.Of(message), due);
    }
}
