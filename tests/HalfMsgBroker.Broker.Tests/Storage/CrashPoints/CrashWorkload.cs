using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Tests.Storage.CrashPoints;

/// <summary>A message's state as the crash test compares it: its state and each group's delivery state and attempts.</summary>
internal sealed class MessageView
{
    public MessageState? State { get; init; }
    public SortedDictionary<string, (DeliveryState State, int Attempts)> Deliveries { get; init; } = new(StringComparer.Ordinal);

    public static readonly MessageView Absent = new();

    public MessageView With(MessageState? state = null, string? group = null, DeliveryState delivery = default, int attempts = 0)
    {
        var copy = new MessageView { State = state ?? State, Deliveries = new(Deliveries, StringComparer.Ordinal) };
        if (group is not null) copy.Deliveries[group] = (delivery, attempts);
        return copy;
    }

    public static MessageView Of(StoredMessage? m)
    {
        if (m is null) return Absent;
        var view = new MessageView { State = m.State };
        foreach (var d in m.Deliveries) view.Deliveries[d.Group] = (d.State, d.Attempts);
        return view;
    }

    public override string ToString() =>
        State is null ? "absent" : State + string.Concat(Deliveries.Select(d => $" {d.Key}={d.Value.State}/{d.Value.Attempts}"));
}

/// <summary>One message the workload made: what the last acknowledged change left, and what the crashed group commit would leave.</summary>
internal sealed class MessageModel(string topic, string key, bool half)
{
    public string Topic { get; } = topic;
    public string Key { get; } = key;
    public bool Half { get; } = half;
    public Guid? Id { get; set; }
    public MessageView Acked { get; set; } = MessageView.Absent;
    public MessageView? IfCrashedBatchApplied { get; set; }

    public StoredMessage? Read(IMessageStore store) =>
        Half ? store.FindByTransactionId(Key) : store.FindByIdempotencyKey(Topic, Key);
}

/// <summary>A subscription on a topic nothing is sent to (so it changes no fan-out): created and deleted at random.</summary>
internal sealed class SubscriptionModel(string group, string topic)
{
    public string Group { get; } = group;
    public string Topic { get; } = topic;
    public bool Acked { get; set; }
    public bool? IfCrashedBatchApplied { get; set; }
}

/// <summary>One command of the workload and what it changes when stored.</summary>
internal sealed class WorkloadOp(string description, StoreCommand command, Func<Task<object?>> submit)
{
    public string Description { get; } = description;
    public StoreCommand Command { get; } = command;
    public Func<Task<object?>> Submit { get; } = submit;
    public List<(MessageModel Message, MessageView Next)> Messages { get; } = [];
    public List<(SubscriptionModel Subscription, bool Next)> Subscriptions { get; } = [];
    public Action<object?>? OnAcked { get; init; }
    public Task<object?>? Task { get; set; }

    /// <summary>Whether the answer is the one the workload's model expects (anything else is a bug in the test or the engine).</summary>
    public Func<object?, bool> Expected { get; init; } = _ => true;
}

/// <summary>
/// A seeded mix of sends, half messages, batches of both, commits, rollbacks, acks, nacks, dead-lettering and
/// subscription changes, issued in waves of commands on distinct messages (so one wave's commands may share a
/// group commit and their outcomes do not depend on each other's order).
/// </summary>
internal sealed class CrashWorkload(Random random, StoreWriter writer)
{
    // Fixed subscriptions, created first: a commit fans out to exactly these.
    public static readonly (string Group, string Topic)[] FanOut = [("g0", "t0"), ("g1", "t0"), ("g0", "t1")];
    private static readonly string[] Topics = ["t0", "t1", "t2"];

    public List<MessageModel> Messages { get; } = [];
    public List<SubscriptionModel> Subscriptions { get; } = [];
    private int _next;

    public static Subscription NewSubscription(string group, string topic) =>
        new(group, topic, TagFilter.All, null, 5, ExhaustedAction.DeadLetter, 0);

    public WorkloadOp[] NextWave(int size)
    {
        var used = new HashSet<object>();
        var wave = new List<WorkloadOp>();
        for (var tries = 0; wave.Count < size && tries < size * 4; tries++)
        {
            if (NextOp(used) is { } op) wave.Add(op);
        }
        return [.. wave];
    }

    private WorkloadOp? NextOp(HashSet<object> used)
    {
        var roll = random.Next(100);
        if (roll < 22) return Send(half: false);
        if (roll < 40) return Send(half: true);
        if (roll < 48) return SendBatch();
        if (roll < 62) return End(used);
        if (roll < 76) return Settle(used, DeliveryState.Acked);
        if (roll < 88) return Settle(used, DeliveryState.Retrying);
        if (roll < 93) return Settle(used, DeliveryState.DeadLettered);
        return ChangeSubscription(used);
    }

    private static SortedDictionary<string, (DeliveryState, int)> FannedOut(string topic) =>
        new(FanOut.Where(s => s.Topic == topic).ToDictionary(s => s.Group, _ => (DeliveryState.Pending, 0)), StringComparer.Ordinal);

    private (MessageModel Model, SendMessage Command) NewSend(bool half)
    {
        var topic = Topics[random.Next(Topics.Length)];
        var key = (half ? "tx-" : "key-") + ++_next;
        var model = new MessageModel(topic, key, half);
        Messages.Add(model);
        var body = new byte[16 + random.Next(random.Next(4) == 0 ? 6000 : 600)];
        for (var i = 0; i < body.Length; i++) body[i] = (byte)('a' + random.Next(26));
        var input = new NewMessage(topic, null, [key], null, body, 0, null)
        {
            IdempotencyKey = half ? null : key,
            TransactionId = half ? key : null,
            ProducerGroup = half ? "pg" : null,
        };
        return (model, new SendMessage(input, half));
    }

    private static MessageView AfterSend(MessageModel m) => m.Half
        ? new MessageView { State = MessageState.Prepared }
        : new MessageView { State = MessageState.Committed, Deliveries = FannedOut(m.Topic) };

    private WorkloadOp Op<TResult>(string description, StoreCommand<TResult> command, Func<TResult, bool> expected, Action<TResult>? onAcked = null) =>
        new(description, command, async () => await writer.Submit(command))
        {
            Expected = result => result is TResult r && expected(r),
            OnAcked = onAcked is null ? null : result => onAcked((TResult)result!),
        };

    private WorkloadOp Send(bool half)
    {
        var (model, command) = NewSend(half);
        var op = Op($"send {model.Key} to {model.Topic}", command, r => r.Status == SendStatus.Created, r => model.Id = r.Message.Id);
        op.Messages.Add((model, AfterSend(model)));
        return op;
    }

    private WorkloadOp SendBatch()
    {
        var half = random.Next(2) == 0;
        var items = Enumerable.Range(0, 2 + random.Next(4)).Select(_ => NewSend(half)).ToList();
        var command = new CommandBatch<SendResult>([.. items.Select(i => i.Command)]);
        var op = Op(
            $"batch of {items.Count} {(half ? "half messages" : "sends")} ({string.Join(", ", items.Select(i => i.Model.Key))})", command,
            r => r.All(s => s.Status == SendStatus.Created),
            r =>
            {
                for (var i = 0; i < items.Count; i++) items[i].Model.Id = r[i].Message.Id;
            });
        foreach (var (model, _) in items) op.Messages.Add((model, AfterSend(model)));
        return op;
    }

    private WorkloadOp? End(HashSet<object> used)
    {
        var prepared = Messages.Where(m => m.Acked.State == MessageState.Prepared && !used.Contains(m)).ToList();
        if (prepared.Count == 0) return null;
        var model = prepared[random.Next(prepared.Count)];
        used.Add(model);
        var commit = random.Next(10) < 7;
        var command = new EndTransaction(model.Key, commit, _ => true);
        var op = Op($"{(commit ? "commit" : "rollback")} {model.Key}", command, r => r.Status == EndStatus.Applied);
        op.Messages.Add((model, commit
            ? new MessageView { State = MessageState.Committed, Deliveries = FannedOut(model.Topic) }
            : new MessageView { State = MessageState.RolledBack }));
        return op;
    }

    /// <summary>An ack, a nack (a failed attempt, retried later) or dead-lettering of one open delivery.</summary>
    private WorkloadOp? Settle(HashSet<object> used, DeliveryState to)
    {
        var open = Messages
            .Where(m => m.Id is not null && !used.Contains(m))
            .SelectMany(m => m.Acked.Deliveries.Where(d => d.Value.State is DeliveryState.Pending or DeliveryState.Retrying).Select(d => (m, d.Key, d.Value.Attempts)))
            .ToList();
        if (open.Count == 0) return null;
        var (model, group, attempts) = open[random.Next(open.Count)];
        used.Add(model);
        var id = model.Id!.Value;
        var description = $"{to} {model.Key} for {group} (attempt {attempts + 1})";
        var op = to switch
        {
            DeliveryState.Acked => Op(description, new AckDeliveries([new AckItem(id, group, attempts + 1)]), r => r == 1),
            DeliveryState.Retrying => Op(
                description, new RecordAttemptFailure(id, group, attempts + 1, "nack", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 60_000), r => r),
            _ => Op(description, new ExhaustDelivery(id, group, attempts + 1, "exhausted", ExhaustedAction.DeadLetter), r => r),
        };
        op.Messages.Add((model, model.Acked.With(group: group, delivery: to, attempts: attempts + 1)));
        return op;
    }

    private WorkloadOp? ChangeSubscription(HashSet<object> used)
    {
        var group = "churn" + random.Next(3);
        var topic = "s" + random.Next(3);
        var model = Subscriptions.FirstOrDefault(s => s.Group == group && s.Topic == topic);
        if (model is null) Subscriptions.Add(model = new SubscriptionModel(group, topic));
        if (!used.Add(model)) return null;
        var create = !model.Acked;
        var description = $"{(create ? "create" : "delete")} subscription {group}/{topic}";
        var op = create
            ? Op(description, new PutSubscription(NewSubscription(group, topic), SigningChange.Keep), r => r.Created)
            : Op(description, new DeleteSubscription(group, topic, writer), r => r);
        op.Subscriptions.Add((model, create));
        return op;
    }
}
