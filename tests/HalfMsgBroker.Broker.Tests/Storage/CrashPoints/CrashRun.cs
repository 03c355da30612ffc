using HalfMsgBroker.Hosting;
using System.Collections.Concurrent;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using HalfMsgBroker.Transactions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Tests.Storage.CrashPoints;

/// <summary>
/// One seed: the real engine (StoreWriter over JournaledMessageStore over LiteDB) runs the seeded workload
/// until the crash point, the data folder is imaged as the crash model leaves it, and a store reopened on the
/// image must hold every acknowledged change, the crashed group commit wholly or not at all, and every intact
/// frame (or refuse to start, changing no file, when a byte of an acknowledged frame was flipped).
/// </summary>
internal sealed class CrashRun(CrashScenario scenario, string root) : IDisposable
{
    private readonly string _data = Path.Combine(root, "data");
    private readonly string _image = Path.Combine(root, "image");
    private readonly CrashingJournalFiles _files = new();
    private readonly ConcurrentDictionary<StoreCommand, int> _batchOf = new();
    private readonly List<WorkloadOp> _ops = [];
    private readonly List<string> _problems = [];

    // The applier holds it while it writes LiteDB, so a crash image never catches LiteDB mid-transaction.
    private readonly SemaphoreSlim _applying = new(1, 1);
    private volatile bool _dead;
    private bool _applierHolds;
    private Dictionary<string, byte[]>? _durableLiteDb;
    private string? _flipped;
    private bool? _crashedBatchApplied;
    private string? _recoveryCrash;
    private string _end = "no end";

    /// <returns>The failure (null when the seed passed), and what kind of crash the seed met, for the summary.</returns>
    public static async Task<(string? Failure, string Kind)> Run(int seed, TimeSpan timeout)
    {
        var scenario = CrashScenario.From(seed);
        var root = Path.Combine(Path.GetTempPath(), "halfmsg-crash-points", $"{seed}-{Guid.NewGuid():N}");
        using var run = new CrashRun(scenario, root);
        try
        {
            var problems = await run.Execute().WaitAsync(timeout);
            return (problems.Count == 0 ? null : run.Describe(string.Join("; ", problems)), run.Kind);
        }
        catch (Exception e)
        {
            return (run.Describe(e.ToString()), run.Kind);
        }
    }

    private string Kind =>
        $"{scenario.Durability}/{_files.FaultKind ?? "no fault"} then {_end}" +
        $"{(_crashedBatchApplied is { } applied ? applied ? ", crashed commit replayed" : ", crashed commit lost" : "")}{(_flipped is null ? "" : ", byte flipped")}" +
        (_recoveryCrash is null ? "" : ", crashed again in the recovery");

    private string Describe(string problem) =>
        $"seed {scenario.Seed} [{scenario}] crash: {_files.FaultDescription ?? "killed after the workload"}" +
        (_flipped is null ? "" : $", {_flipped}") + (_recoveryCrash is null ? "" : $", {_recoveryCrash}") + $": {problem}";

    public void Dispose()
    {
        BrokerFactory.TryDelete(root);
        _applying.Dispose();
    }

    private async Task<List<string>> Execute()
    {
        var options = new BrokerOptions
        {
            DataPath = _data,
            Storage = new StorageOptions
            {
                Durability = scenario.Durability,
                ApplyDelay = TimeSpan.FromMilliseconds(scenario.ApplyDelayMs),
                JournalSegmentBytes = scenario.SegmentBytes,
                CheckpointPages = scenario.CheckpointPages,
            },
        };
        var db = new LiteDbMessageStore(_data, scenario.Durability, scenario.CheckpointPages);
        var store = new JournaledMessageStore(db, Path.Combine(_data, "journal"), options.Storage, _ => { }, NullLogger.Instance, _files);
        store.ApplyFault = ApplierStep;
        var services = new ServiceCollection()
            .AddLogging()
            .AddMetrics()
            .AddSingleton<BrokerMetrics>()
            .AddSingleton(Options.Create(options))
            .AddSingleton(TimeProvider.System)
            .AddSingleton<IMessageStore>(store)
            .AddStorePorts()
            .AddSingleton<DueScheduler>()
            .AddSingleton<DeliveryRegistry>()
            .AddSingleton<ILiveDeliveries, InMemoryLiveDeliveries>()
            .AddSingleton<IDeliveryRecorder, DeliveryRecorder>()
            .AddSingleton<CheckSchedule>()
            .AddSingleton<StoreWriter>()
            .BuildServiceProvider();
        var cleanlyStopped = false;
        try
        {
            var writer = services.GetRequiredService<StoreWriter>();
            writer.CommandFault = command => _batchOf[command] = _files.WritesStarted;
            foreach (var (group, topic) in CrashWorkload.FanOut)
            {
                await writer.Submit(new PutSubscription(CrashWorkload.NewSubscription(group, topic), SigningChange.Keep));
            }

            if (scenario is { Model: CrashModel.PowerCut, LiteDbLastDurable: true }) TakeDurableLiteDb();
            _files.OnDeath = TakeImage;
            var plan = new CrashScenario.PlanState();
            _files.Plan = (n, call, length) => scenario.FaultAt(n, call, length, plan);
            _files.Armed = true;

            var workload = new CrashWorkload(new Random(scenario.Seed * 7 + 1), writer);
            var random = new Random(scenario.Seed * 11 + 3);
            for (var w = 0; w < scenario.Waves && !_files.Dead && _files.FaultedBatch is null; w++)
            {
                var wave = workload.NextWave(1 + random.Next(scenario.MaxWave));
                foreach (var op in wave) op.Task = op.Submit();
                foreach (var op in wave)
                {
                    try
                    {
                        await op.Task!;
                    }
                    catch (Exception e) when (e is StoreUnavailableException)
                    {
                        // The journal failed or the process "died": not acknowledged.
                    }
                }
                Settle(wave);
            }

            if (!_files.Dead)
            {
                if (_files.FaultedBatch is not null && scenario.CleanStopAfterFailure)
                {
                    // What the broker does after a failed journal write or fsync: stop, applying what LiteDB lacks, keeping the journal.
                    services.Dispose();
                    store.Dispose();
                    cleanlyStopped = true;
                    TakeImage(CrashModel.Kill);
                    _end = "clean stop";
                }
                else
                {
                    _files.Kill();
                    _end = scenario.Model + " after the workload";
                }
            }
            else
            {
                _end = scenario.Model.ToString();
            }
        }
        finally
        {
            if (!cleanlyStopped)
            {
                _dead = true;
                services.Dispose();
                store.DisposeAsIfCrashed();
            }
        }

        Reopen();
        return _problems;
    }

    /// <summary>Books each answered op into the model: acknowledged, in the crashed group commit, or neither.</summary>
    private void Settle(WorkloadOp[] wave)
    {
        var faulted = _files.FaultedBatch;
        foreach (var op in wave)
        {
            _ops.Add(op);
            var executed = _batchOf.TryGetValue(op.Command, out var batch);
            var answered = op.Task!.IsCompletedSuccessfully;
            var acked = answered && (faulted is null || (executed && batch < faulted));
            if (acked)
            {
                if (!op.Expected(op.Task.Result)) _problems.Add($"'{op.Description}' was answered {op.Task.Result}, not as the workload expects");
                foreach (var (m, next) in op.Messages) m.Acked = next;
                foreach (var (s, next) in op.Subscriptions) s.Acked = next;
                op.OnAcked?.Invoke(op.Task.Result);
            }
            else if (executed && batch == faulted)
            {
                foreach (var (m, next) in op.Messages) m.IfCrashedBatchApplied = next;
                foreach (var (s, next) in op.Subscriptions) s.IfCrashedBatchApplied = next;
            }
        }
    }

    private void ApplierStep(bool applied)
    {
        if (!applied)
        {
            if (_applierHolds) return; // a retry after a failed apply: the applier still holds the gate
            if (_dead) throw new IOException("The process is dead (test crash).");
            _applying.Wait();
            _applierHolds = true;
            if (!_dead) return;
            _applierHolds = false;
            _applying.Release();
            throw new IOException("The process is dead (test crash).");
        }
        // LiteDB's commit is durable now (fsynced in Fsync mode): this is what a power cut leaves of it.
        if (scenario is { Model: CrashModel.PowerCut, LiteDbLastDurable: true }) TakeDurableLiteDb();
        _applierHolds = false;
        _applying.Release();
    }

    private void TakeDurableLiteDb() => _durableLiteDb = ReadLiteDbFiles();

    private void TakeImage() => TakeImage(scenario.Model);

    /// <summary>The crash instant: the applier is between LiteDB transactions; the writer is inside the seam or idle.</summary>
    private void TakeImage(CrashModel model)
    {
        var held = !_dead && _applying.Wait(TimeSpan.FromSeconds(30));
        try
        {
            var lite = model == CrashModel.PowerCut && scenario.LiteDbLastDurable ? _durableLiteDb! : ReadLiteDbFiles();
            var journal = _files.JournalImage(model, new Random(scenario.Seed * 13 + 5));
            Directory.CreateDirectory(Path.Combine(_image, "journal"));
            foreach (var (name, bytes) in lite) File.WriteAllBytes(Path.Combine(_image, name), bytes);
            foreach (var (name, bytes) in journal) File.WriteAllBytes(Path.Combine(_image, "journal", name), bytes);
        }
        finally
        {
            _dead = true;
            if (held) _applying.Release();
        }
    }

    private Dictionary<string, byte[]> ReadLiteDbFiles() => ReadLiteDbFiles(_data);

    private static Dictionary<string, byte[]> ReadLiteDbFiles(string folder)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var path in Directory.GetFiles(folder, "broker*.db"))
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            files[Path.GetFileName(path)] = copy.ToArray();
        }
        return files;
    }

    private void Reopen()
    {
        var image = _image;
        var journalDir = Path.Combine(image, "journal");
        if (scenario.FlipByte) FlipAByte(journalDir);
        var segments = JournalScan.Scan(journalDir);
        var lastIntact = segments.Where(s => s.Frames > 0).Select(s => s.LastSeq).DefaultIfEmpty(0).Max();
        if (scenario.RecoveryCrash > 0 && _flipped is null && segments.Count > 0 && CrashInRecovery(journalDir, segments.Count) is { } second)
        {
            image = second;
            journalDir = Path.Combine(image, "journal");
        }
        var before = Snapshot(image);

        LiteDbMessageStore db;
        JournaledMessageStore store;
        try
        {
            JournalReplay.Preflight(image, journalDir);
            db = new LiteDbMessageStore(image, scenario.Durability, scenario.CheckpointPages);
            store = new JournaledMessageStore(db, journalDir, new StorageOptions { Durability = scenario.Durability }, _ => { }, NullLogger.Instance);
        }
        catch (JournalCorruptException e)
        {
            if (_flipped is null) _problems.Add("the reopen refused the journal: " + e.Message);
            else if (ChangedFiles(before, Snapshot(image)) is { Length: > 0 } changed) _problems.Add("the refused start changed files in the data folder: " + changed);
            return;
        }
        using (store)
        {
            if (_flipped is not null)
            {
                _problems.Add("the store opened over a flipped byte in an acknowledged frame");
                return;
            }
            var applied = db.AppliedJournalSeq();
            if (applied < lastIntact) _problems.Add($"recovery left intact frames unapplied: LiteDB holds up to frame {applied}, the journal held intact frames up to {lastIntact}");
            Check(store);
        }
    }

    /// <summary>
    /// A second crash, during the recovery: the replay has stored the frames in LiteDB, and the process dies before
    /// the start's k-th segment deletion (or before it creates the new segment). The next start must still find all.
    /// </summary>
    /// <returns>The folder as that crash leaves it, or null when the recovery ended before the crash point.</returns>
    private string? CrashInRecovery(string journalDir, int segmentCount)
    {
        var second = Path.Combine(root, "image-after-recovery-crash");
        var dieAt = 1 + (scenario.RecoveryCrash - 1) % (segmentCount + 1);
        var files = new CrashingJournalFiles();
        files.Adopt(journalDir);
        files.DeletePlan = k => k == dieAt;
        files.Plan = (_, call, _) => call == SeamCall.Create && dieAt > segmentCount ? new SeamFault(Dies: true) : null;
        files.Armed = true;
        var model = scenario.Durability == Durability.Fsync ? scenario.Model : CrashModel.Kill;
        files.OnDeath = () =>
        {
            Directory.CreateDirectory(Path.Combine(second, "journal"));
            foreach (var (name, bytes) in ReadLiteDbFiles(_image)) File.WriteAllBytes(Path.Combine(second, name), bytes);
            foreach (var (name, bytes) in files.JournalImage(model, new Random(scenario.Seed * 19 + 11))) File.WriteAllBytes(Path.Combine(second, "journal", name), bytes);
        };
        try
        {
            JournalReplay.Preflight(_image, journalDir);
            var db = new LiteDbMessageStore(_image, scenario.Durability, scenario.CheckpointPages);
            new JournaledMessageStore(db, journalDir, new StorageOptions { Durability = scenario.Durability }, _ => { }, NullLogger.Instance, files).DisposeAsIfCrashed();
        }
        catch (IOException) when (files.Dead)
        {
            _recoveryCrash = $"died in the recovery before {(dieAt > segmentCount ? "creating the new segment" : $"deleting segment {dieAt} of {segmentCount}")} ({model})";
            return second;
        }
        catch (JournalCorruptException)
        {
            // Judged by the reopen below, on the same image.
        }
        return null;
    }

    private void Check(JournaledMessageStore store)
    {
        // The crashed group commit is all or nothing: every entity it touched agrees on which.
        void Crashed(bool applied, string what)
        {
            _crashedBatchApplied ??= applied;
            if (_crashedBatchApplied != applied) _problems.Add($"the crashed group commit is half applied: {what} is {(applied ? "" : "not ")}applied, an earlier entity said otherwise");
        }

        var deadLetters = CrashWorkload.FanOut
            .ToDictionary(s => s, s => store.DeadLetterIds(s.Group, s.Topic, null, 100_000).Items.ToHashSet());
        foreach (var m in _ops.SelectMany(o => o.Messages).Select(x => x.Message).Distinct())
        {
            var stored = m.Read(store);
            var view = MessageView.Of(stored);
            var acked = view.ToString() == m.Acked.ToString();
            var crashed = m.IfCrashedBatchApplied is { } c && view.ToString() == c.ToString();
            if (acked && crashed) continue; // the crashed commit would not have changed it
            if (crashed) Crashed(true, m.Key);
            else if (acked) { if (m.IfCrashedBatchApplied is not null) Crashed(false, m.Key); }
            else
            {
                _problems.Add($"{m.Key} is '{view}', acknowledged '{m.Acked}'" + (m.IfCrashedBatchApplied is { } p ? $", or '{p}' with the crashed commit" : ""));
            }
            if (stored is null) continue;
            foreach (var d in stored.Deliveries)
            {
                var key = (d.Group, stored.Topic);
                var listed = deadLetters.TryGetValue(key, out var ids) && ids.Contains(stored.Id);
                if (listed != (d.State == DeliveryState.DeadLettered)) _problems.Add($"{m.Key}: delivery to {d.Group} is {d.State} but the dead-letter index {(listed ? "lists" : "lacks")} it");
            }
        }

        var subscriptions = store.Subscriptions().Select(s => (s.Group, s.Topic)).ToHashSet();
        foreach (var fixedOne in CrashWorkload.FanOut)
        {
            if (!subscriptions.Contains(fixedOne)) _problems.Add($"the acknowledged subscription {fixedOne} is missing");
        }
        foreach (var s in _ops.SelectMany(o => o.Subscriptions).Select(x => x.Subscription).Distinct())
        {
            var exists = subscriptions.Contains((s.Group, s.Topic));
            if (exists == s.Acked)
            {
                if (s.IfCrashedBatchApplied is { } c && c != s.Acked) Crashed(false, $"subscription {s.Group}/{s.Topic}");
            }
            else if (s.IfCrashedBatchApplied == exists) Crashed(true, $"subscription {s.Group}/{s.Topic}");
            else _problems.Add($"subscription {s.Group}/{s.Topic} {(exists ? "exists" : "is missing")}, acknowledged {(s.Acked ? "created" : "deleted")}");
        }
    }

    /// <summary>Flips one byte of a frame that has an intact frame after it: damage that must refuse the start.</summary>
    private void FlipAByte(string journalDir)
    {
        var random = new Random(scenario.Seed * 17 + 7);
        var candidates = new List<(string Path, long Offset, int Length, long Seq)>();
        foreach (var path in JournalScan.Segments(journalDir))
        {
            var frames = new List<(string, long, int, long)>();
            JournalScan.ReadSegment(path, (seq, offset, payload) => frames.Add((path, offset, Journal.HeaderBytes + payload.Length, seq)));
            candidates.AddRange(frames.Take(frames.Count - 1));
        }
        if (candidates.Count == 0) return;
        var (file, at, length, frameSeq) = candidates[random.Next(candidates.Count)];
        var bytes = File.ReadAllBytes(file);
        var position = at + random.Next(length);
        bytes[position] ^= (byte)(1 + random.Next(255));
        File.WriteAllBytes(file, bytes);
        _flipped = $"byte {position} of {Path.GetFileName(file)} flipped (frame {frameSeq})";
    }

    // broker.lock is the start's own lock file, not data.
    private static Dictionary<string, byte[]> Snapshot(string image) => Directory.GetFiles(image, "*", SearchOption.AllDirectories)
        .Where(p => Path.GetFileName(p) != "broker.lock")
        .ToDictionary(p => p, File.ReadAllBytes, StringComparer.Ordinal);

    private static string ChangedFiles(Dictionary<string, byte[]> before, Dictionary<string, byte[]> after) => string.Join(", ", before.Keys.Union(after.Keys)
        .Where(p => !before.TryGetValue(p, out var a) || !after.TryGetValue(p, out var b) || !a.AsSpan().SequenceEqual(b))
        .Select(p => $"{Path.GetFileName(p)} ({(before.TryGetValue(p, out var a) ? a.Length : -1)} -> {(after.TryGetValue(p, out var b) ? b.Length : -1)} bytes)"));
}
