using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

/// <summary>
/// The stored messages a batch's commands are going to read, named before any of them runs
/// (<see cref="StoreCommand.NoteLookups"/>), so a store shared by many active brokers reads and locks them all
/// in one query (<see cref="IBatchPrefetch"/>) instead of one round trip each on the writer's thread.
/// A command may still read what it did not name; that read simply costs its own round trip.
/// </summary>
internal sealed class BatchLookups
{
    public HashSet<Guid> Ids { get; } = [];
    public HashSet<string> TransactionIds { get; } = new(StringComparer.Ordinal);

    /// <summary>Deliveries whose lease the batch checks (many active brokers: their <c>halfmsg_deliveries</c> rows, locked after the messages).</summary>
    public HashSet<(Guid MessageId, string Group)> Leases { get; } = [];

    /// <summary>
    /// Topics the batch's sends fan out to. With those of the <see cref="TransactionIds"/> (a commit fans out to its
    /// message's topic), a store shared by many active brokers reads their subscriptions in the same round trip.
    /// </summary>
    public HashSet<string> FanOutTopics { get; } = new(StringComparer.Ordinal);

    public bool IsEmpty => Ids.Count == 0 && TransactionIds.Count == 0 && Leases.Count == 0 && FanOutTopics.Count == 0;

    public void Clear()
    {
        Ids.Clear();
        TransactionIds.Clear();
        Leases.Clear();
        FanOutTopics.Clear();
    }
}
