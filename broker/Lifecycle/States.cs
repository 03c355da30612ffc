namespace HalfMsgBroker.Lifecycle;

public enum MessageState
{
    Prepared = 0,
    Committed = 1,
    RolledBack = 2,
}

public enum ResolvedBy
{
    None = 0,
    Producer = 1,
    Check = 2,
    CheckExhausted = 3,
}

/// <summary>
/// The state of one consumer group's delivery of one message. <see cref="InFlight"/> is never stored:
/// a crash forgets which messages were handed out, and they simply become visible again.
/// </summary>
public enum DeliveryState
{
    Pending = 0,
    InFlight = 1,
    Retrying = 2,
    Acked = 3,
    DeadLettered = 4,
    Discarded = 5,
}

public enum ExhaustedAction
{
    DeadLetter = 0,
    Discard = 1,
}

/// <summary>What a producer's check endpoint answered, after mapping RocketMQ's names.</summary>
public enum CheckAnswer
{
    Unknown = 0,
    Commit = 1,
    Rollback = 2,

    /// <summary>The producer could not be reached (refused, DNS, connect timeout): no answer, no check spent.</summary>
    Unreachable = 3,
}

public static class StateNames
{
    public static string Of(MessageState s) => s switch
    {
        MessageState.Prepared => "prepared",
        MessageState.Committed => "committed",
        _ => "rolledBack",
    };

    public static string? Of(ResolvedBy r) => r switch
    {
        ResolvedBy.Producer => "producer",
        ResolvedBy.Check => "check",
        ResolvedBy.CheckExhausted => "checkExhausted",
        _ => null,
    };

    public static string Of(DeliveryState s) => s switch
    {
        DeliveryState.Pending => "pending",
        DeliveryState.InFlight => "inFlight",
        DeliveryState.Retrying => "retrying",
        DeliveryState.Acked => "acked",
        DeliveryState.DeadLettered => "deadLettered",
        _ => "discarded",
    };

    public static bool TryParseMessageState(string value, out MessageState state)
    {
        switch (value)
        {
            case "prepared": state = MessageState.Prepared; return true;
            case "committed": state = MessageState.Committed; return true;
            case "rolledBack": state = MessageState.RolledBack; return true;
            default: state = default; return false;
        }
    }

    public static string Of(ExhaustedAction a) => a == ExhaustedAction.Discard ? "discard" : "deadLetter";

    public static bool IsTerminal(this DeliveryState s) =>
        s is DeliveryState.Acked or DeliveryState.DeadLettered or DeliveryState.Discarded;
}
