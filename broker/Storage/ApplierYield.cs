using System.Diagnostics;

namespace HalfMsgBroker.Storage;

/// <summary>
/// Hands the applier's core back every <see cref="Quantum"/> of LiteDB work. Nice 10 (<see cref="BackgroundPriority"/>)
/// decides who gets a core when both want one, not how soon a request thread that wakes up gets it: Linux's EEVDF
/// scheduler lets the thread already on a core run out its slice (run to parity, a few milliseconds) first, whatever
/// their nice values, and an apply burst of LiteDB inserts is that long. A commit or a receive handed to that core
/// waited it out, and that was most of workload 1's full-load e2e tail. <c>sched_yield</c> every 50 µs of work
/// bounds the wait; with nothing else ready to run it returns at once, so an idle machine applies as fast as before.
/// Workload 1 at full load on two cores, two alternating pairs of builds: e2e p99 3.6 / 3.6 ms against 5.8 / 5.3 and
/// 8,948 / 8,982 msg/s against 7,761 / 7,600 (Fsync); 2.1 / 1.7 ms against 3.3 / 3.7 (VisibleBeforeFsync); the same
/// CPU per message (bench/results/2026-12-01-applier-yield.md).
/// One applier at a time: not thread-safe.
/// </summary>
internal sealed class ApplierYield
{
    public static readonly TimeSpan Quantum = TimeSpan.FromMicroseconds(50);

    private readonly Func<long> _timestamp;
    private readonly Func<bool> _yield;
    private readonly long _quantumTicks;
    private long _since;

    public ApplierYield() : this(Stopwatch.GetTimestamp, Thread.Yield, (long)(Quantum.TotalSeconds * Stopwatch.Frequency))
    {
    }

    /// <param name="timestamp">A clock in ticks of <paramref name="quantumTicks"/>' unit.</param>
    /// <param name="yield">Gives the core away (true when another thread ran).</param>
    /// <param name="quantumTicks">How much work may run between two yields.</param>
    internal ApplierYield(Func<long> timestamp, Func<bool> yield, long quantumTicks)
    {
        _timestamp = timestamp;
        _yield = yield;
        _quantumTicks = quantumTicks;
    }

    /// <summary>How often this applier gave its core away.</summary>
    public long Yields { get; private set; }

    /// <summary>A burst of work starts now (the time before it was spent waiting, not working).</summary>
    public void Start() => _since = _timestamp();

    /// <summary>Between two pieces of work: yields once a quantum of work has run since the last yield.</summary>
    public void Between()
    {
        if (_timestamp() - _since < _quantumTicks) return;
        _yield();
        Yields++;
        _since = _timestamp();
    }
}
