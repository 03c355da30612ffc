using HalfMsgBroker.Engine;

namespace HalfMsgBroker.Storage;

/// <summary>A delivery's lease as a batch read it: its nonce (0: not leased), attempts, and due time or lease end.</summary>
internal readonly record struct LeaseState(ulong Nonce, int Attempts, long VisibleAt);

/// <summary>
/// A store that can read, in one round trip, the messages a batch is about to look up (inside <see cref="IMessageLog.RunBatch"/>,
/// before its commands run); its lookups then answer from what was read. For a store shared by many active brokers the read
/// also locks the rows, in id order, so two brokers' batches that touch the same messages lock them in the same order;
/// the delivery leases named are locked after the messages, also in order, and stay as read until the batch ends.
/// </summary>
internal interface IBatchPrefetch
{
    void Prefetch(BatchLookups lookups);

    /// <summary>A lease named to <see cref="Prefetch"/> in this batch, as locked (null: the delivery has no row); throws for one not named.</summary>
    LeaseState? PrefetchedLease(Guid messageId, string group);
}
