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

    // Per topic, for the console's charts (Hosting.ActivityRates): sent, committed, rolled back, acked.
    // A topic's counters are made once and zeroed after each batch, so a known topic allocates nothing.
    private readonly Dictionary<string, int[]> _byTopic = new(StringComparer.Ordinal);
    private readonly List<string> _touched = [];

    public IReadOnlyList<string> TouchedTopics => _touched;

    public int[] TopicCounts(string topic) => _byTopic[topic];

    public void Sent(bool half, string topic)
    {
        if (half) SentHalf++;
        else SentPlain++;
        IsEmpty = false;
        CountTopic(topic, 0);
    }

    public void Resolved(StoredMessage message)
    {
        var by = (int)message.ResolvedBy;
        if ((uint)by >= Resolvers) return;
        if (message.State == MessageState.Committed) Committed[by]++;
        else RolledBack[by]++;
        IsEmpty = false;
        CountTopic(message.Topic, message.State == MessageState.Committed ? 1 : 2);
    }

    public void Acked(StoredMessage message, long now)
    {
        if (message.ResolvedAt > 0) CommitToAckMs.Add(Math.Max(0, now - message.ResolvedAt));
        IsEmpty = false;
        CountTopic(message.Topic, 3);
    }

    private void CountTopic(string topic, int series)
    {
        if (!_byTopic.TryGetValue(topic, out var counts)) _byTopic[topic] = counts = new int[4];
        if (counts[0] == 0 && counts[1] == 0 && counts[2] == 0 && counts[3] == 0) _touched.Add(topic);
        counts[series]++;
    }

    public void Clear()
    {
        if (IsEmpty) return;
        SentPlain = SentHalf = 0;
        Array.Clear(Committed);
        Array.Clear(RolledBack);
        CommitToAckMs.Clear();
        foreach (var topic in _touched) Array.Clear(_byTopic[topic]);
        _touched.Clear();
        IsEmpty = true;
    }
}
