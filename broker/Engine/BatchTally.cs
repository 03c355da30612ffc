using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

/// <summary>
/// What one group commit's commands did, for the metrics: counted while the batch runs and
/// published only once it is durable, so a batch that fails and is retried one by one counts once.
/// Plain fields and a reused list: nothing is allocated per message.
/// </summary>
internal sealed class BatchTally
{
    public const int Resolvers = (int)ResolvedBy.CheckExhausted + 1;

    public int SentPlain { get; private set; }
    public int SentHalf { get; private set; }
    public int[] Committed { get; } = new int[Resolvers];
    public int[] RolledBack { get; } = new int[Resolvers];

    /// <summary>For each ack of the batch: milliseconds from the message's commit to the ack.</summary>
    public List<long> CommitToAckMs { get; } = [];

    public bool IsEmpty { get; private set; } = true;

    public void Sent(bool half)
    {
        if (half) SentHalf++;
        else SentPlain++;
        IsEmpty = false;
    }

    public void Resolved(StoredMessage message)
    {
        var by = (int)message.ResolvedBy;
        if ((uint)by >= Resolvers) return;
        if (message.State == MessageState.Committed) Committed[by]++;
        else RolledBack[by]++;
        IsEmpty = false;
    }

    public void Acked(StoredMessage message, long now)
    {
        if (message.ResolvedAt > 0) CommitToAckMs.Add(Math.Max(0, now - message.ResolvedAt));
        IsEmpty = false;
    }

    public void Clear()
    {
        if (IsEmpty) return;
        SentPlain = SentHalf = 0;
        Array.Clear(Committed);
        Array.Clear(RolledBack);
        CommitToAckMs.Clear();
        IsEmpty = true;
    }
}
