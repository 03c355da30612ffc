using HalfMsgBroker.Configuration;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage.CrashPoints;

/// <summary>Everything a seed decides about one crash run, printed with any failure so the seed can be replayed.</summary>
internal sealed record CrashScenario(
    int Seed,
    Durability Durability,
    CrashModel Model,
    int ApplyDelayMs,
    long SegmentBytes,
    int CheckpointPages,
    int Waves,
    int MaxWave,
    int CrashCall,
    bool Fails,
    double CutFraction,
    bool AfterSync,
    bool PageCacheKeeps,
    bool CleanStopAfterFailure,
    bool LiteDbLastDurable,
    bool FlipByte,
    int SecondFaultAfter,
    int RollCall,
    int RecoveryCrash)
{
    public static CrashScenario From(int seed)
    {
        var r = new Random(seed);
        var durability = r.Next(2) == 0 ? Durability.Process : Durability.Fsync;
        var waves = 8 + r.Next(40);
        // Process mode promises survival of a kill, not of a power cut: only Fsync mode is cut off the power.
        var model = durability == Durability.Fsync && r.Next(2) == 0 ? CrashModel.PowerCut : CrashModel.Kill;
        // Armed seam calls per wave: a write (and an fsync) per group commit, a wave being one to three group commits.
        var callsPerWave = durability == Durability.Fsync ? 2.5 : 1.2;
        return new CrashScenario(
            seed,
            durability,
            model,
            ApplyDelayMs: r.Next(4) switch { 0 => 0, 1 => 1, 2 => 5, _ => 30 },
            SegmentBytes: r.Next(3) == 0 ? 1 << 20 : Journal.MinSegmentBytes,
            CheckpointPages: r.Next(2) == 0 ? 1000 : 4 + r.Next(40),
            Waves: waves,
            MaxWave: 1 + r.Next(8),
            CrashCall: 1 + r.Next((int)(waves * callsPerWave)),
            Fails: r.Next(4) == 0,
            CutFraction: r.Next(4) switch { 0 => 0, 1 => 1, _ => r.NextDouble() },
            AfterSync: r.Next(2) == 0,
            PageCacheKeeps: r.Next(2) == 0,
            CleanStopAfterFailure: r.Next(2) == 0,
            LiteDbLastDurable: r.Next(2) == 0,
            FlipByte: r.Next(8) == 0,
            SecondFaultAfter: 1 + r.Next(12),
            // One seed in five aims its first fault at a segment roll (rare among calls) instead of a call number.
            RollCall: r.Next(5) == 0 ? 1 + r.Next(4) : 0,
            // One seed in four crashes again during the recovery (0: not).
            RecoveryCrash: r.Next(4) == 0 ? 1 + r.Next(8) : 0);
    }

    /// <summary>
    /// What the plan does at armed call <paramref name="n"/> of the journal's file seam. A failed segment roll (create or
    /// folder fsync) does not stop the journal, so more follow it: every later roll fails too, and the process dies in a
    /// write or an fsync a few calls later.
    /// </summary>
    public SeamFault? FaultAt(int n, SeamCall call, int length, PlanState state)
    {
        var roll = call is SeamCall.Create or SeamCall.SyncDirectory;
        if (roll) state.RollCalls++;
        if (state.FirstAt == 0 && (RollCall > 0 ? roll && state.RollCalls == RollCall : n == CrashCall))
        {
            state.FirstAt = n;
            state.RollFailed = Fails && roll;
            return FaultFor(call, length, !Fails);
        }
        if (!state.RollFailed) return null;
        // The folder stays unwritable for a while (every roll fails), then the process dies in a write or fsync.
        if (roll) return FaultFor(call, length, dies: false);
        return n >= state.FirstAt + SecondFaultAfter ? FaultFor(call, length, dies: true) : null;
    }

    /// <summary>Where a run's plan stands.</summary>
    internal sealed class PlanState
    {
        public int RollCalls { get; set; }
        public int FirstAt { get; set; }
        public bool RollFailed { get; set; }
    }

    private SeamFault FaultFor(SeamCall call, int length, bool dies) => call switch
    {
        SeamCall.Write => new SeamFault(dies, Bytes: (int)Math.Min(length, Math.Floor(CutFraction * (length + 1)))),
        SeamCall.Sync => new SeamFault(dies, AfterSync: AfterSync, PageCacheKeeps: PageCacheKeeps),
        _ => new SeamFault(dies),
    };
}
