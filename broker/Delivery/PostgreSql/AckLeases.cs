using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Delivery.PostgreSql;

/// <summary>
/// A pull ack with many active brokers, in one transaction: the writer's batch locks the deliveries' rows after their
/// messages (<see cref="IBatchPrefetch"/>), acks those whose lease is still held (the nonce matches and the lease has not
/// run out at the batch's clock), and the same commit deletes their rows. A lease that ran out, or that another consumer
/// holds now, is stale and left alone. Nothing is given up before the outcome is stored, so a refused batch leaves every
/// lease as it was: the consumer may ack again with the same handles.
/// </summary>
internal sealed class AckLeases(string group, IReadOnlyList<(Guid MessageId, ulong Nonce)> leases) : DeliveryChange<AckOutcome>
{
    protected override AckOutcome Run(WriteContext ctx)
    {
        var rows = ctx.Store as IBatchPrefetch ?? throw new InvalidOperationException("Acking leases needs a store that reads them with the batch (many active brokers).");
        var stale = new List<int>();
        var acked = new HashSet<Guid>();
        for (var i = 0; i < leases.Count; i++)
        {
            var (id, nonce) = leases[i];
            if (acked.Contains(id) && rows.PrefetchedLease(id, group)?.Nonce == nonce) continue; // the same handle twice
            if (rows.PrefetchedLease(id, group) is not { } lease || lease.Nonce == 0 || lease.Nonce != nonce || lease.VisibleAt <= ctx.Now)
            {
                stale.Add(i);
                continue;
            }
            acked.Add(id);
            if (Changed(ctx, id, group, d => DeliveryLifecycle.Ack(d, lease.Attempts)) is { } message) ctx.Tally.Acked(message, ctx.Now);
        }
        return new AckOutcome(acked.Count, stale);
    }

    public override void NoteLookups(BatchLookups lookups)
    {
        foreach (var (id, _) in leases)
        {
            lookups.Ids.Add(id);
            lookups.Leases.Add((id, group));
        }
    }
}
