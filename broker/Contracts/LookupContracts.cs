namespace HalfMsgBroker.Contracts;

public sealed record DeliveryView(string ConsumerGroup, string State, int Attempts, string? LastError, DateTime? NextAttemptAt);

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
    string? OrderingKey = null);

public sealed record MessageList(IReadOnlyList<MessageView> Messages, string? Next);

public sealed record TopicView(string Topic, long MessageCount);

public sealed record TopicList(IReadOnlyList<TopicView> Topics);

public sealed record HealthView(string Status);
