using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Api;

/// <summary>Applies a change to every dead letter of a group (or one topic) a page at a time, so memory stays bounded however many there are.</summary>
internal static class DeadLetterPages
{
    /// <returns>The sum of what <paramref name="apply"/> returned for each page.</returns>
    public static async Task<int> ForEachAsync(
        IStoreMonitoring store, string group, string? topic, Func<IReadOnlyList<Guid>, Task<int>> apply, CancellationToken cancellationToken, int pageSize = 500)
    {
        var total = 0;
        Guid? after = null;
        do
        {
            cancellationToken.ThrowIfCancellationRequested();
            var page = store.DeadLetterIds(group, topic, after, pageSize);
            if (page.Items.Count == 0) break;
            total += await apply(page.Items);
            after = page.Next;
        }
        while (after is not null);
        return total;
    }
}
