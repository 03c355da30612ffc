using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

/// <summary>A multi-message transaction as validated by the API: one producer group, 1–100 messages.</summary>
internal sealed record NewTransaction(string ProducerGroup, string TransactionId, IReadOnlyList<NewMessage> Messages, TimeSpan? CheckImmunity);

internal sealed record TransactionResult(SendStatus Status, string TransactionId, MessageState State, IReadOnlyList<(Guid Id, string Topic)> Messages);

/// <summary>
/// Prepares every message of a multi-message transaction in one command, so one journal frame holds
/// them all. The first message carries the transactionId (unique, like a half message's), the check
/// time and the others' ids (<see cref="StoredMessage.Members"/>); the others carry only
/// <see cref="StoredMessage.InTransaction"/>. Sending the same transaction again replays it (a
/// transaction of one message is the same as a half message with its fields); a transactionId
/// already used for anything else is a conflict.
/// </summary>
internal sealed class SendTransaction(NewTransaction input) : StoreCommand<TransactionResult>
{
    protected override TransactionResult Run(WriteContext ctx)
    {
        // As SendMessage: outside careful mode a new id is not looked up; the journal's unique check
        // refuses a duplicate, and the batch then runs again carefully, looking first.
        var existing = ctx.Careful
            ? ctx.Messages.FindByTransactionId(input.TransactionId)
            : ctx.Messages.FindCachedByTransactionId(input.TransactionId);
        if (existing is not null)
        {
            var stored = Messages(ctx, existing);
            var same = stored is not null && existing.ProducerGroup == input.ProducerGroup && stored.Count == input.Messages.Count
                && stored.Zip(input.Messages).All(p => p.First.Topic == p.Second.Topic && SendMessage.SameBody(p.First.Body, p.Second.Body));
            return Result(same ? SendStatus.Replayed : SendStatus.Conflict, existing, stored ?? [existing]);
        }

        var checkAfter = input.CheckImmunity ?? ctx.Options.Transactions.CheckAfter;
        var messages = new List<StoredMessage>(input.Messages.Count);
        for (var i = 0; i < input.Messages.Count; i++)
        {
            var m = input.Messages[i];
            messages.Add(new StoredMessage
            {
                TransactionId = i == 0 ? input.TransactionId : null,
                InTransaction = i == 0 ? null : input.TransactionId,
                Id = ctx.Ids.Next(ctx.Now),
                Topic = m.Topic,
                Tag = m.Tag,
                Keys = m.Keys,
                Properties = m.Properties,
                Body = m.Body,
                BornAt = ctx.Now,
                DeliverAt = m.DeliverAt,
                TraceParent = m.TraceParent,
                OrderingKey = m.OrderingKey,
                ProducerGroup = input.ProducerGroup,
                State = MessageState.Prepared,
            });
        }
        var first = messages[0];
        first.Members = messages.Skip(1).Select(m => m.Id).ToArray();
        first.NextCheckAt = ctx.Now + (long)checkAfter.TotalMilliseconds;

        // The first message (the unique key) goes first, so a duplicate is refused before anything else is written.
        foreach (var m in messages)
        {
            ctx.Messages.Insert(m);
            ctx.CountMessage(m.Topic, 1);
            ctx.Tally.Sent(half: true, m.Topic);
        }
        var due = first.NextCheckAt;
        ctx.AfterCommit(() => ctx.Checks.Nudge(due));
        return Result(SendStatus.Created, first, messages);
    }

    /// <summary>
    /// The transaction's messages in order (a half message sent alone is a transaction of one), or
    /// null when one of them is gone (retention deleted it): then it cannot be the same transaction.
    /// </summary>
    private static List<StoredMessage>? Messages(WriteContext ctx, StoredMessage first)
    {
        var all = new List<StoredMessage>(first.Members.Length + 1) { first };
        foreach (var id in first.Members)
        {
            if (ctx.Messages.Find(id) is not { } member) return null;
            all.Add(member);
        }
        return all;
    }

    private static TransactionResult Result(SendStatus status, StoredMessage first, IReadOnlyList<StoredMessage> messages) =>
        new(status, first.TransactionId!, first.State, messages.Select(m => (m.Id, m.Topic)).ToList());
}

/// <summary>The other messages of a multi-message transaction end with its first one, in the same command.</summary>
internal static class TransactionMembers
{
    public static void EndWith(WriteContext ctx, StoredMessage first)
    {
        if (first.Members.Length == 0 || first.State == MessageState.Prepared) return;
        foreach (var id in first.Members)
        {
            if (ctx.Messages.Find(id) is not { State: MessageState.Prepared } member) continue;
            TransactionLifecycle.End(member, first.State == MessageState.Committed, first.ResolvedBy, ctx.Now);
            Publication.Resolved(ctx, member);
            ctx.Messages.Update(member);
        }
    }
}
