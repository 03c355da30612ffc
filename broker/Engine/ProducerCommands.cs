using System.Text.Json;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

/// <summary>A message as validated by the API, before it is stored.</summary>
internal sealed record NewMessage(
    string Topic,
    string? Tag,
    string[] Keys,
    Dictionary<string, string>? Properties,
    byte[] Body,
    long DeliverAt,
    string? TraceParent)
{
    public string? IdempotencyKey { get; init; }
    public string? ProducerGroup { get; init; }
    public string? TransactionId { get; init; }
    public TimeSpan? CheckImmunity { get; init; }
    public string? OrderingKey { get; init; }
}

internal enum SendStatus
{
    Created,
    Replayed,
    Conflict,
}

/// <summary>What a caller may read of a message once its command completed (the writer keeps changing the original).</summary>
internal sealed record MessageSnapshot(Guid Id, string Topic, string? TransactionId, MessageState State, ResolvedBy ResolvedBy)
{
    public static MessageSnapshot Of(StoredMessage m) => new(m.Id, m.Topic, m.TransactionId, m.State, m.ResolvedBy);
}

internal sealed record SendResult(SendStatus Status, MessageSnapshot Message);

/// <summary>Stores a plain message (committed at once) or a half message (prepared).</summary>
internal sealed class SendMessage(NewMessage input, bool half) : StoreCommand<SendResult>
{
    protected override SendResult Run(WriteContext ctx)
    {
        // In a batch, a new transactionId or Idempotency-Key (the common case) is not looked up: the
        // unique index refuses a duplicate, the batch is retried carefully, and this lookup finds it.
        var existing = !ctx.Careful
            ? (half ? ctx.Messages.FindCachedByTransactionId(input.TransactionId!) : null)
            : half
                ? ctx.Messages.FindByTransactionId(input.TransactionId!)
                : input.IdempotencyKey is { } key ? ctx.Store.FindByIdempotencyKey(input.Topic, key) : null;
        if (existing is not null)
        {
            // Another producer group's transaction is never "the same message": replaying it would hand out its id.
            // Nor is a multi-message transaction, whatever its first message holds.
            var same = existing.Members.Length == 0 && existing.Topic == input.Topic && existing.ProducerGroup == input.ProducerGroup && SameBody(existing.Body, input.Body);
            return new SendResult(same ? SendStatus.Replayed : SendStatus.Conflict, MessageSnapshot.Of(existing));
        }

        var message = new StoredMessage
        {
            Id = ctx.Ids.Next(ctx.Now),
            Topic = input.Topic,
            Tag = input.Tag,
            Keys = input.Keys,
            Properties = input.Properties,
            Body = input.Body,
            BornAt = ctx.Now,
            DeliverAt = input.DeliverAt,
            TraceParent = input.TraceParent,
            IdempotencyKey = input.IdempotencyKey,
            ProducerGroup = input.ProducerGroup,
            TransactionId = input.TransactionId,
            OrderingKey = input.OrderingKey,
            State = half ? MessageState.Prepared : MessageState.Committed,
        };

        if (half)
        {
            var checkAfter = input.CheckImmunity ?? ctx.Options.Transactions.CheckAfter;
            message.NextCheckAt = ctx.Now + (long)checkAfter.TotalMilliseconds;
            var due = message.NextCheckAt;
            ctx.AfterCommit(() => ctx.Checks.Nudge(due));
        }
        else
        {
            message.ResolvedAt = ctx.Now;
            Publication.FanOut(ctx, message);
        }

        ctx.Messages.Insert(message);
        ctx.CountMessage(message.Topic, 1);
        ctx.Tally.Sent(half, message.Topic);
        return new SendResult(SendStatus.Created, MessageSnapshot.Of(message));
    }

    /// <summary>
    /// A retry is the same message when its body is the same JSON value: bodies are stored as sent, so
    /// a retry that formats the JSON differently (or a body stored re-encoded by an older broker) differs
    /// in bytes only. Bytes are compared first; parsing happens only when they differ.
    /// </summary>
    internal static bool SameBody(byte[] stored, byte[] sent)
    {
        if (stored.AsSpan().SequenceEqual(sent)) return true;
        try
        {
            using var a = JsonDocument.Parse(stored);
            using var b = JsonDocument.Parse(sent);
            return JsonElement.DeepEquals(a.RootElement, b.RootElement);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    public override void NoteLookups(BatchLookups lookups)
    {
        if (!half) lookups.FanOutTopics.Add(input.Topic);
    }
}

internal enum EndStatus
{
    NotFound,
    Applied,
    AlreadyEnded,
    Conflict,
}

internal sealed record EndResult(EndStatus Status, MessageSnapshot? Message);

/// <summary>The producer's commit or rollback of a half message.</summary>
/// <param name="mayEnd">Whether the caller may end a transaction of this producer group; one it may not is "not found".</param>
internal sealed class EndTransaction(string transactionId, bool commit, Func<string?, bool> mayEnd) : StoreCommand<EndResult>
{
    protected override EndResult Run(WriteContext ctx)
    {
        var message = ctx.Messages.FindByTransactionId(transactionId);
        if (message is null || !mayEnd(message.ProducerGroup)) return new EndResult(EndStatus.NotFound, null);

        switch (TransactionLifecycle.End(message, commit, ResolvedBy.Producer, ctx.Now))
        {
            case EndOutcome.AlreadyEnded:
                return new EndResult(EndStatus.AlreadyEnded, MessageSnapshot.Of(message));
            case EndOutcome.Conflict:
                return new EndResult(EndStatus.Conflict, MessageSnapshot.Of(message));
        }

        Publication.Resolved(ctx, message);
        ctx.Messages.Update(message);
        return new EndResult(EndStatus.Applied, MessageSnapshot.Of(message));
    }

    public override void NoteLookups(BatchLookups lookups) => lookups.TransactionIds.Add(transactionId);
}

/// <summary>What happens to a message once it is committed or rolled back, by whoever ended it.</summary>
internal static class Publication
{
    public static void Resolved(WriteContext ctx, StoredMessage message)
    {
        ctx.Tally.Resolved(message);
        if (message.State == MessageState.Committed) FanOut(ctx, message);
        else DeliveryLifecycle.UpdateFinished(message, ctx.Now, ctx.Options.Retention);
        TransactionMembers.EndWith(ctx, message);
    }

    /// <summary>Creates the deliveries of a committed message and, once stored, makes them live.</summary>
    public static void FanOut(WriteContext ctx, StoredMessage message)
    {
        DeliveryLifecycle.FanOut(message, ctx.SubscriptionsOf(message.Topic));
        DeliveryLifecycle.UpdateFinished(message, ctx.Now, ctx.Options.Retention);
        if (message.OrderingKey is not null) message.CommitSeq = ctx.NextCommitSeq();
        if (message.Deliveries.Count == 0) return;

        var payload = MessagePayload.From(message);
        var deliveries = message.Deliveries.Select(d => (d.Group, d.Attempts, Due: Math.Max(d.NextAttemptAt, message.DeliverAt))).ToArray();
        ctx.AfterCommit(() =>
        {
            foreach (var (group, attempts, due) in deliveries)
            {
                ctx.Live.Enqueue(group, message.Topic, message.Id, attempts, due, payload, message.OrderingKey, message.CommitSeq);
            }
        });
    }
}
