namespace HalfMsgBroker.Contracts;

/// <summary>The optional body of the console's actions: why the operator made the change (see <c>X-HalfMsg-Reason</c>).</summary>
public sealed record ReasonRequest
{
    public string? Reason { get; init; }
}

public sealed record CheckNowResponse(string TransactionId, string MessageId, string State, DateTime? NextCheckAt);

/// <summary>How a push endpoint has answered since the broker started (in memory only).</summary>
public sealed record PushHealthView(DateTime? LastSuccessAt, DateTime? LastFailureAt, string? LastError, int ConsecutiveFailures);

public sealed record ConsumerGroupList(IReadOnlyList<ConsumerGroupView> ConsumerGroups);

public sealed record ProducerGroupList(IReadOnlyList<ProducerGroupView> ProducerGroups);

/// <summary>Counts per bucket, oldest first; the last bucket is the one still filling.</summary>
public sealed record TopicSeriesView(string Topic, int[] Sent, int[] Committed, int[] RolledBack, int[] Acked);

public sealed record CheckSeriesView(int[] Commit, int[] Rollback, int[] Unknown, int[] Failed, int[] Unreachable);

public sealed record TopicStatsView(int BucketSeconds, DateTime From, DateTime To, IReadOnlyList<TopicSeriesView> Topics, CheckSeriesView Checks);

public sealed record DeadLetterCountView(string ConsumerGroup, string Topic, int Count);

public sealed record CheckTotalsView(long Commit, long Rollback, long Unknown, long Failed, long Unreachable);

/// <param name="FiguresAt">When the store's figures (prepared, oldest, dead letters) were read; null before the first reading.</param>
public sealed record OverviewView(
    int Prepared,
    DateTime? OldestPreparedBornAt,
    IReadOnlyList<DeadLetterCountView> DeadLetters,
    CheckTotalsView ChecksSinceStart,
    DateTime? FiguresAt);
