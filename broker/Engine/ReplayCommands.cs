using HalfMsgBroker.Delivery;
using HalfMsgBroker.Lifecycle;

namespace HalfMsgBroker.Engine;

/// <summary>
/// Replay: the group's finished deliveries of these messages (one page of the commit-time index) are
/// delivered again, with a fresh attempt count. A delivery still to make is skipped, so a message is never
/// live twice; a message without a delivery for the group (committed before it subscribed, or filtered
/// out by its tag filter) is not the group's and is skipped too.
/// </summary>
internal sealed class ReplayDeliveries(string group, IReadOnlyList<Guid> ids) : DeliveryChange<int>
{
    protected override int Run(WriteContext ctx) => StartOver(ctx, ids, group, DeliveryLifecycle.Replay);
}

/// <summary>Retry-now: the group's deliveries of these messages that wait for a retry backoff are due at once.</summary>
internal sealed class RetryDeliveriesNow(string group, string topic, IReadOnlyList<Guid> ids) : DeliveryChange<int>
{
    protected override int Run(WriteContext ctx)
    {
        var retried = 0;
        foreach (var id in ids)
        {
            if (ctx.Messages.Find(id) is not { } found || found.Topic != topic) continue;
            if (Changed(ctx, id, group, DeliveryLifecycle.RetryNow) is null) continue;
            retried++;
            ctx.AfterCommit(() => ctx.Live.BringForward(group, topic, id));
        }
        return retried;
    }
}
