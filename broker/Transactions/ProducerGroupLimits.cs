using HalfMsgBroker.Configuration;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Transactions;

/// <summary>The bounds of a producer group's check-back limits, and the limits a group has in effect.</summary>
internal static class ProducerGroupLimits
{
    /// <summary>The pool (<c>Broker:Transactions:MaxChecksInFlight</c>) and the per-host cap still apply.</summary>
    public const int MaxInFlight = 1000;

    public const int MaxPerSecond = 100_000;

    public static int InFlightOf(ProducerGroup group, TransactionOptions options) =>
        group.MaxChecksInFlight ?? options.ProducerGroupMaxChecksInFlight;

    /// <summary>0 = no rate limit.</summary>
    public static int PerSecondOf(ProducerGroup group, TransactionOptions options) =>
        group.MaxChecksPerSecond ?? options.ProducerGroupMaxChecksPerSecond;
}
