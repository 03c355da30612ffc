using HalfMsgBroker.Delivery;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

/// <summary>A check to make, with a copy of what the check request carries.</summary>
internal sealed record CheckToSend(MessagePayload Message, string TransactionId, string? ProducerGroup, int CheckNumber);

/// <summary>
/// A due check to begin, with the lease its call gets. <paramref name="HeldUntil"/>: where the
/// check-back loop moved it while it waited in memory for one of its group's calls to end (0: not
/// held); a message still at exactly that time is due for this purpose.
/// </summary>
internal readonly record struct CheckStart(Guid Id, TimeSpan Lease, long HeldUntil = 0);

/// <summary>
/// Marks due messages as being checked. Each check gets a lease (the producer's timeout plus a
/// margin): if the broker dies mid-check, the message is due again once the lease runs out.
/// Messages out of checks are rolled back here instead of being called once more.
/// </summary>
internal sealed class BeginChecks(IReadOnlyList<CheckStart> due) : StoreCommand<IReadOnlyList<CheckToSend>>
{
    protected override IReadOnlyList<CheckToSend> Run(WriteContext ctx)
    {
        var toSend = new List<CheckToSend>(due.Count);
        foreach (var (id, lease, heldUntil) in due)
        {
            var message = ctx.Messages.Find(id);
            if (message is null || message.State != MessageState.Prepared) continue;
            if (message.NextCheckAt > ctx.Now && (heldUntil == 0 || message.NextCheckAt != heldUntil)) continue;

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

    public override void NoteLookups(BatchLookups lookups)
    {
        foreach (var start in due) lookups.Ids.Add(start.Id);
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

    public override void NoteLookups(BatchLookups lookups) => lookups.Ids.Add(id);
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
