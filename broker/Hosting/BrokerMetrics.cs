using System.Diagnostics.Metrics;
using HalfMsgBroker.Engine;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// The broker's own instruments (meter <c>HalfMsgBroker</c>), made by the host's <see cref="IMeterFactory"/>
/// so each host (and each test host) reports its own figures. Readable at <c>/metrics</c>, over OTLP, or
/// with <c>dotnet-counters monitor -n HalfMsgBroker.Broker --counters HalfMsgBroker</c>. The gauges that
/// read the broker's state are in <see cref="BrokerGauges"/>.
/// </summary>
public sealed class BrokerMetrics
{
    public const string MeterName = "HalfMsgBroker";

    private static readonly KeyValuePair<string, object?> Plain = new("kind", "plain");
    private static readonly KeyValuePair<string, object?> Half = new("kind", "half");
    private static readonly KeyValuePair<string, object?>[] ByResolver =
    [
        new("resolved_by", "none"),
        new("resolved_by", "producer"),
        new("resolved_by", "check"),
        new("resolved_by", "check_exhausted"),
    ];

    private readonly Counter<long> _storeCommands;
    private readonly Histogram<int> _storeBatchSize;
    private readonly Histogram<double> _storeCommitMs;
    private readonly Histogram<int> _storeApplyDocuments;
    private readonly Histogram<double> _storeApplyMs;
    private readonly Counter<long> _sent;
    private readonly Counter<long> _committed;
    private readonly Counter<long> _rolledBack;
    private readonly Histogram<double> _commitToAck;
    private readonly Counter<long> _pushAttempts;
    private readonly Counter<long> _pushFailures;
    private readonly Counter<long> _checks;

    public BrokerMetrics(IMeterFactory factory, TimeProvider? time = null)
    {
        Rates = new ActivityRates(time ?? TimeProvider.System);
        Meter = factory.Create(MeterName, "1.0");
        _storeCommands = Meter.CreateCounter<long>("halfmsg.store.commands", description: "Changes applied by the single writer");
        _storeBatchSize = Meter.CreateHistogram<int>("halfmsg.store.batch_size", null, "Changes per group commit", null,
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] });
        _storeCommitMs = Meter.CreateHistogram<double>("halfmsg.store.commit_ms", "ms", "Duration of one group commit, fsync included");
        _storeApplyDocuments = Meter.CreateHistogram<int>("halfmsg.store.apply_documents", null, "Documents one apply writes to LiteDB, after coalescing", null,
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 10, 100, 1000, 10_000, 100_000] });
        _storeApplyMs = Meter.CreateHistogram<double>("halfmsg.store.apply_ms", "ms", "Duration of one apply of journaled changes to LiteDB");
        _sent = Meter.CreateCounter<long>("halfmsg.messages.sent", description: "Messages stored by a send; kind=plain|half");
        _committed = Meter.CreateCounter<long>("halfmsg.messages.committed",
            description: "Half messages committed; resolved_by=producer|check");
        _rolledBack = Meter.CreateCounter<long>("halfmsg.messages.rolled_back",
            description: "Half messages rolled back; resolved_by=producer|check|check_exhausted");
        _commitToAck = Meter.CreateHistogram<double>("halfmsg.delivery.commit_to_ack", "s",
            "From a message's commit (or plain send) to one group's ack of it", null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] });
        _pushAttempts = Meter.CreateCounter<long>("halfmsg.push.attempts", description: "Push requests sent");
        _pushFailures = Meter.CreateCounter<long>("halfmsg.push.failures",
            description: "Push requests that failed; reason=timeout|connection refused|dns|tls|url-not-allowed|invalid answer|connection failed|http <status>|broker error");
        _checks = Meter.CreateCounter<long>("halfmsg.checks",
            description: "Check-back requests sent; outcome=commit|rollback|unknown|failed");
    }

    /// <summary>The meter every broker instrument hangs off (the gauges too).</summary>
    public Meter Meter { get; }

    /// <summary>The last minutes of activity per topic and of check-backs, for the operator console.</summary>
    internal ActivityRates Rates { get; }

    /// <summary>A group commit that is durable: its size, its duration and what its commands tallied.</summary>
    internal void BatchCommitted(int commands, TimeSpan elapsed, BatchTally tally)
    {
        _storeCommands.Add(commands);
        _storeBatchSize.Record(commands);
        _storeCommitMs.Record(elapsed.TotalMilliseconds);
        if (tally.IsEmpty) return;
        Rates.Record(tally);
        if (tally.SentPlain > 0) _sent.Add(tally.SentPlain, Plain);
        if (tally.SentHalf > 0) _sent.Add(tally.SentHalf, Half);
        for (var by = 0; by < BatchTally.Resolvers; by++)
        {
            if (tally.Committed[by] > 0) _committed.Add(tally.Committed[by], ByResolver[by]);
            if (tally.RolledBack[by] > 0) _rolledBack.Add(tally.RolledBack[by], ByResolver[by]);
        }
        foreach (var ms in tally.CommitToAckMs) _commitToAck.Record(ms / 1000.0);
    }

    internal void Applied(int documents, TimeSpan elapsed)
    {
        _storeApplyDocuments.Record(documents);
        _storeApplyMs.Record(elapsed.TotalMilliseconds);
    }

    /// <param name="failure">Null for a 2xx; otherwise the word the delivery's lastError gets.</param>
    internal void Pushed(string? failure)
    {
        _pushAttempts.Add(1);
        if (failure is not null) _pushFailures.Add(1, new KeyValuePair<string, object?>("reason", failure));
    }

    internal void PushBrokerError() => _pushFailures.Add(1, new KeyValuePair<string, object?>("reason", "broker error"));

    /// <param name="outcome">commit, rollback, unknown (the producer answered so, or nonsense) or failed (no answer).</param>
    internal void Checked(string outcome)
    {
        _checks.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
        Rates.Checked(outcome);
    }
}
