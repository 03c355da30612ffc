using HalfMsgBroker.Lifecycle;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The listings and counts behind the admin API, the console, quotas and gauges. Listings walk an
/// index in id order and stop at <c>limit</c>; a cursor (<c>after</c>) is the last id of the previous
/// page. None of them is on a message's path, and none may be read inside a writer batch.
/// </summary>
public interface IStoreMonitoring
{
    /// <summary>Messages carrying the key (and on the topic, when given), in id order after <paramref name="after"/>.</summary>
    StorePage<StoredMessage> FindByKey(string key, string? topic, Guid? after, int limit);

    /// <summary>The group's dead letters (of one topic, when given), in message id order after <paramref name="after"/>.</summary>
    StorePage<StoredMessage> DeadLetters(string group, string? topic, Guid? after, int limit);

    /// <summary>The ids <see cref="DeadLetters"/> would list, read from the index alone: for walking them all in pages.</summary>
    StorePage<Guid> DeadLetterIds(string group, string? topic, Guid? after, int limit);

    /// <summary>
    /// Messages of the topic committed from <paramref name="from"/> to <paramref name="to"/> (inclusive), in commit
    /// order after <paramref name="after"/>, read from the commit-time index alone: for walking them in pages.
    /// </summary>
    IReadOnlyList<CommittedRef> CommittedOn(string topic, long from, long to, CommittedRef? after, int limit);

    /// <summary>How many dead letters the group has on the topic, counted on the index.</summary>
    int CountDeadLetters(string group, string topic);

    /// <summary>
    /// Half messages (transactions) in id order after <paramref name="after"/>, at most
    /// <paramref name="limit"/> that match: the state, producer group and topic when given, and
    /// <paramref name="filter"/>. The walk stops at the limit; it never loads all of them.
    /// </summary>
    IReadOnlyList<StoredMessage> Transactions(
        MessageState? state, string? producerGroup, string? topic, Guid? after, int limit, Func<StoredMessage, bool> filter);

    IReadOnlyList<TopicCount> TopicCounts();

    /// <summary>Every registered producer group, by name (the console's listing; there are few).</summary>
    IReadOnlyList<ProducerGroup> ProducerGroups() => [];

    /// <summary>How many producer groups are registered (for the quota).</summary>
    int ProducerGroupCount();
}
