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
    bool FlipByte)
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
            FlipByte: r.Next(8) == 0);
    }

    /// <summary>What the plan does at the chosen armed call of the journal's file seam.</summary>
    public SeamFault FaultFor(SeamCall call, int length) => call switch
    {
        SeamCall.Write => new SeamFault(!Fails, Bytes: (int)Math.Min(length, Math.Floor(CutFraction * (length + 1)))),
        SeamCall.Sync => new SeamFault(!Fails, AfterSync: AfterSync, PageCacheKeeps: PageCacheKeeps),
        _ => new SeamFault(!Fails),
    };
}
