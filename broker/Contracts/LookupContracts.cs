namespace HalfMsgBroker.Contracts;

public sealed record DeliveryView(
    string ConsumerGroup, string State, int Attempts, string? LastError, DateTime? NextAttemptAt, DateTime? DeadLetteredAt = null);

/// <summary>How a half message's transaction went (null for a plain message): what the timeline shows.</summary>
public sealed record ResolutionView(
    string? ResolvedBy, DateTime? ResolvedAt, int CheckCount, DateTime? LastCheckAt, string? LastCheckResult, DateTime? NextCheckAt,
    int UnreachableCount, int UnknownCount);

public sealed record MessageView(
    string MessageId,
    string Topic,
    string? Tag,
    string[] Keys,
    Dictionary<string, string>? Properties,
    RawJson Body,
    string State,
    string? TransactionId,
    string? ProducerGroup,
    DateTime BornAt,
    DateTime? DeliverAt,
    IReadOnlyList<DeliveryView> Deliveries,
    DateTime? ResolvedAt = null,
    ResolutionView? Transaction = null,
    string? OrderingKey = null);

public sealed record MessageList(IReadOnlyList<MessageView> Messages, string? Next);

public sealed record TopicView(string Topic, long MessageCount);

public sealed record TopicList(IReadOnlyList<TopicView> Topics);

public sealed record HealthView(string Status);
