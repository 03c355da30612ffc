using HalfMsgBroker.Delivery;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

/// <summary>Base for changes to one group's delivery of one message.</summary>
internal abstract class DeliveryChange<TResult> : StoreCommand<TResult>
{
    protected static bool Change(WriteContext ctx, Guid id, string group, Func<StoredDelivery, bool> transition) =>
        Changed(ctx, id, group, transition) is not null;

    /// <returns>The message when the transition applied (and was stored), otherwise null.</returns>
    protected static StoredMessage? Changed(WriteContext ctx, Guid id, string group, Func<StoredDelivery, bool> transition)
    {
        var message = ctx.Messages.Find(id);
        var delivery = message?.DeliveryFor(group);
        if (message is null || delivery is null) return null;
        var wasDeadLetter = delivery.State == DeliveryState.DeadLettered;
        if (!transition(delivery)) return null;
        DeliveryLifecycle.UpdateFinished(message, ctx.Now, ctx.Options.Retention);
        ctx.Messages.Update(message);
        // Every move into or out of DeadLettered passes here: the dead-letter index follows it.
        var isDeadLetter = delivery.State == DeliveryState.DeadLettered;
        if (isDeadLetter != wasDeadLetter)
        {
            var entry = new DeadLetterRef(group, message.Topic, message.Id);
            if (isDeadLetter) ctx.Store.PutDeadLetter(entry, delivery.DeadLetteredAt);
            else ctx.Store.DeleteDeadLetter(entry);
        }
        return message;
    }

    /// <summary>
    /// Applies a transition that starts the group's delivery over (redrive, replay) to each message and,
    /// once stored, puts the delivery back in the queue with a fresh attempt count.
    /// </summary>
    /// <returns>How many deliveries were started over.</returns>
    protected static int StartOver(WriteContext ctx, IReadOnlyList<Guid> ids, string group, Func<StoredDelivery, bool> transition)
    {
        var started = 0;
        foreach (var id in ids)
        {
            if (Changed(ctx, id, group, transition) is not { } message) continue;
            started++;
            var payload = MessagePayload.From(message);
            ctx.AfterCommit(() => ctx.Live.Enqueue(group, message.Topic, message.Id, 0, 0, payload, message.OrderingKey, message.CommitSeq));
        }
        return started;
    }
}

internal readonly record struct AckItem(Guid MessageId, string Group, int Attempts);

/// <summary>Acks from one request (or one push), written together.</summary>
internal sealed class AckDeliveries(IReadOnlyList<AckItem> acks) : DeliveryChange<int>
{
    protected override int Run(WriteContext ctx)
    {
        var acked = 0;
        foreach (var ack in acks)
        {
            if (Changed(ctx, ack.MessageId, ack.Group, d => DeliveryLifecycle.Ack(d, ack.Attempts)) is not { } message) continue;
            acked++;
            ctx.Tally.Acked(message, ctx.Now);
        }
        return acked;
    }

    public override void NoteLookups(BatchLookups lookups)
    {
        foreach (var ack in acks) lookups.Ids.Add(ack.MessageId);
    }
}

internal sealed class RecordAttemptFailure(Guid id, string group, int attempts, string error, long nextAttemptAt) : DeliveryChange<bool>
{
    protected override bool Run(WriteContext ctx) =>
        Change(ctx, id, group, d => DeliveryLifecycle.Fail(d, attempts, error, nextAttemptAt));

    public override void NoteLookups(BatchLookups lookups) => lookups.Ids.Add(id);
}

internal sealed class ExhaustDelivery(Guid id, string group, int attempts, string error, ExhaustedAction action) : DeliveryChange<bool>
{
    protected override bool Run(WriteContext ctx) =>
        Change(ctx, id, group, d => DeliveryLifecycle.Exhaust(d, attempts, error, action, ctx.Now));

    public override void NoteLookups(BatchLookups lookups) => lookups.Ids.Add(id);
}

/// <summary>Removes deliveries whose subscription was deleted, so their messages can finish.</summary>
internal sealed class DropDeliveries(string group, IReadOnlyList<Guid> ids) : StoreCommand<int>
{
    protected override int Run(WriteContext ctx)
    {
        var dropped = 0;
        foreach (var id in ids)
        {
            var message = ctx.Messages.Find(id);
            if (message is null || message.Deliveries.RemoveAll(d => d.Group == group && !d.State.IsTerminal()) == 0) continue;
            DeliveryLifecycle.UpdateFinished(message, ctx.Now, ctx.Options.Retention);
            ctx.Messages.Update(message);
            dropped++;
        }
        return dropped;
    }
}

/// <summary>Puts dead letters back for delivery with a fresh attempt count (ids that are no dead letter of the group are skipped).</summary>
internal sealed class RedriveDeadLetters(string group, IReadOnlyList<Guid> ids) : DeliveryChange<int>
{
    protected override int Run(WriteContext ctx) => StartOver(ctx, ids, group, DeliveryLifecycle.Redrive);
}

/// <summary>Deletes dead letters for good (ids that are no dead letter of the group are skipped).</summary>
internal sealed class DeleteDeadLetters(string group, IReadOnlyList<Guid> ids) : DeliveryChange<int>
{
    protected override int Run(WriteContext ctx) => ids.Count(each => Change(ctx, each, group, DeliveryLifecycle.DeleteDeadLetter));
}

/// <summary>
/// Retention: dead letters made before <paramref name="deadLetteredBefore"/> are given up the way an
/// operator's delete gives them up (their messages are then purged once finished). An entry whose
/// message no longer holds that dead letter is dropped from the index.
/// </summary>
/// <returns>How many entries were settled (expired or dropped); 0 means none of them could be.</returns>
internal sealed class ExpireDeadLetters(IReadOnlyList<DeadLetterRef> due, long deadLetteredBefore) : DeliveryChange<int>
{
    protected override int Run(WriteContext ctx)
    {
        var settled = 0;
        foreach (var entry in due)
        {
            if (Change(ctx, entry.MessageId, entry.Group, d => DeliveryLifecycle.ExpireDeadLetter(d, deadLetteredBefore)))
            {
                settled++;
            }
            else if (ctx.Messages.Find(entry.MessageId)?.DeliveryFor(entry.Group)?.State != DeliveryState.DeadLettered)
            {
                ctx.Store.DeleteDeadLetter(entry);
                settled++;
            }
        }
        return settled;
    }
}

/// <summary>Retention: deletes finished messages whose time ran out.</summary>
internal sealed class PurgeMessages(IReadOnlyList<Guid> ids) : StoreCommand<int>
{
    protected override int Run(WriteContext ctx)
    {
        var purged = 0;
        foreach (var id in ids)
        {
            var message = ctx.Messages.Find(id);
            if (message is null || message.PurgeAt == 0 || message.PurgeAt > ctx.Now) continue;
            ctx.Messages.Delete(message);
            ctx.CountMessage(message.Topic, -1);
            purged++;
        }
        return purged;
    }
}
