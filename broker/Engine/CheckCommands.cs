using HalfMsgBroker.Delivery;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

/// <summary>A check to make, with a copy of what the check request carries.</summary>
internal sealed record CheckToSend(MessagePayload Message, string TransactionId, string? ProducerGroup, int CheckNumber);

/// <summary>
/// Marks due messages as being checked. Each check gets a lease (the producer's timeout plus a
/// margin): if the broker dies mid-check, the message is due again once the lease runs out.
/// Messages out of checks are rolled back here instead of being called once more.
/// </summary>
internal sealed class BeginChecks(IReadOnlyList<(Guid Id, TimeSpan Lease)> due) : StoreCommand<IReadOnlyList<CheckToSend>>
{
    protected override IReadOnlyList<CheckToSend> Run(WriteContext ctx)
    {
        var toSend = new List<CheckToSend>(due.Count);
        foreach (var (id, lease) in due)
        {
            var message = ctx.Messages.Find(id);
            if (message is null || message.State != MessageState.Prepared || message.NextCheckAt > ctx.Now) continue;

            if (TransactionLifecycle.ExhaustIfOutOfChecks(message, ctx.Now, ctx.Options.Transactions))
            {
                Publication.Resolved(ctx, message);
            }
            else
            {
                TransactionLifecycle.BeginCheck(message, ctx.Now, lease);
                toSend.Add(new CheckToSend(MessagePayload.From(message), message.TransactionId!, message.ProducerGroup, message.CheckCount));
            }
            ctx.Messages.Update(message);
        }
        return toSend;
    }
}

/// <summary>Applies a producer's answer to one check; late answers are ignored.</summary>
internal sealed class ApplyCheckAnswer(Guid id, int checkNumber, CheckAnswer answer, string resultText, TimeSpan? retryAfter = null)
    : StoreCommand<CheckOutcome>
{
    protected override CheckOutcome Run(WriteContext ctx)
    {
        var message = ctx.Messages.Find(id);
        if (message is null) return CheckOutcome.Ignored;

        var outcome = TransactionLifecycle.ApplyCheckAnswer(
            message, checkNumber, answer, resultText, ctx.Now, ctx.Options.Transactions, retryAfter);
        switch (outcome)
        {
            case CheckOutcome.Ignored:
                return outcome;
            case CheckOutcome.StillPrepared:
                var due = message.NextCheckAt;
                ctx.AfterCommit(() => ctx.Checks.Nudge(due));
                break;
            default:
                Publication.Resolved(ctx, message);
                break;
        }
        ctx.Messages.Update(message);
        return outcome;
    }
}

/// <summary>
/// Moves due checks of a stalled target later without making them: no check is counted, so a
/// producer whose endpoint is stuck does not use up its checks while none of them can be sent.
/// </summary>
internal sealed class DeferChecks(IReadOnlyList<(Guid Id, long Until)> due) : StoreCommand<int>
{
    protected override int Run(WriteContext ctx)
    {
        var deferred = 0;
        foreach (var (id, until) in due)
        {
            var message = ctx.Messages.Find(id);
            if (message is null || !TransactionLifecycle.DeferCheck(message, ctx.Now, until)) continue;
            ctx.Messages.Update(message);
            deferred++;
        }
        return deferred;
    }
}
