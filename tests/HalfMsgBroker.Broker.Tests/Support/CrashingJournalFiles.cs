using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Tests.Support;

/// <summary>One call into the journal's file seam, as a crash plan sees it.</summary>
public enum SeamCall
{
    Create,
    Write,
    Sync,
    SyncDirectory,
}

/// <summary>What a crash plan does at a call: nothing, fail it (the process lives on), or die in it.</summary>
/// <param name="Bytes">For a write: how many of its bytes reach the file first.</param>
/// <param name="AfterSync">For an fsync that dies: whether the fsync completed before the death.</param>
/// <param name="PageCacheKeeps">For a failed fsync: whether the written bytes stay in the page cache ("fsyncgate": they may not).</param>
public sealed record SeamFault(bool Dies, int Bytes = 0, bool AfterSync = false, bool PageCacheKeeps = true);

/// <summary>How the files look after a crash: a process kill keeps what reached the OS; a power cut keeps what was fsynced.</summary>
public enum CrashModel
{
    Kill,
    PowerCut,
}

/// <summary>
/// The real journal files, plus an in-memory shadow of each segment (its bytes, how many of them the
/// last fsync covered, whether its directory entry was fsynced) so a test can fail or cut any call and
/// then build the journal folder as a kill or a power cut would leave it. A death makes every later
/// call fail, as if the process were gone; deletions after it are dropped (they never happened).
/// </summary>
public sealed class CrashingJournalFiles : IJournalFiles
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Shadow> _shadows = new(StringComparer.Ordinal);
    private int _armedCalls;
    private int _deletes;
    private volatile bool _dead;

    /// <summary>Decides per armed call (numbered from 1); null: the call runs normally.</summary>
    public Func<int, SeamCall, int, SeamFault?>? Plan { get; set; }

    /// <summary>Dies before the k-th deletion (numbered from 1) when it answers true. Only for a start's deletions: the applier's cannot throw.</summary>
    public Func<int, bool>? DeletePlan { get; set; }

    /// <summary>Runs on the dying thread before the call throws: the moment to take the crash image.</summary>
    public Action? OnDeath { get; set; }

    /// <summary>Whether calls are counted and offered to <see cref="Plan"/> (arm once the store is open).</summary>
    public bool Armed { get; set; }

    public bool Dead => _dead;

    /// <summary>Segment writes begun so far: the group commit in flight is number <c>WritesStarted - 1</c>.</summary>
    public int WritesStarted { get; private set; }

    /// <summary>The group commit a fault hit (a death or a failure), or null.</summary>
    public int? FaultedBatch { get; private set; }

    /// <summary>What the fault was, for the failure message.</summary>
    public string? FaultDescription { get; private set; }

    /// <summary>The fault in a few words ("death in Write (cut)"), for a summary across seeds.</summary>
    public string? FaultKind { get; private set; }

    public IJournalSegmentFile Create(string path)
    {
        if (Enter(SeamCall.Create, path, 0) is not null) throw new IOException("Cannot create the file (test)");
        var real = JournalFiles.Real.Create(path);
        lock (_lock) _shadows[path] = new Shadow(Path.GetDirectoryName(path)!);
        return new Segment(this, path, real);
    }

    public void Delete(string path)
    {
        // The applier deletes applied segments; after a death nothing of the process happens any more.
        if (_dead) return;
        if (DeletePlan?.Invoke(++_deletes) == true)
        {
            FaultDescription ??= $"death before deleting {Path.GetFileName(path)}";
            Die();
        }
        JournalFiles.Real.Delete(path);
        lock (_lock)
        {
            if (_shadows.TryGetValue(path, out var s)) s.Exists = false;
        }
    }

    public void SyncDirectory(string directory)
    {
        if (Enter(SeamCall.SyncDirectory, directory, 0) is not null) throw new IOException("Input/output error (test: directory fsync failed)");
        JournalFiles.Real.SyncDirectory(directory);
        lock (_lock)
        {
            foreach (var s in _shadows.Values)
            {
                if (s.Directory == directory) s.DurablyExists = s.Exists;
            }
        }
    }

    /// <summary>Takes the segments already in <paramref name="directory"/> as fsynced, with durable entries (a start's view of them).</summary>
    public void Adopt(string directory)
    {
        lock (_lock)
        {
            foreach (var path in JournalScan.Segments(directory))
            {
                var shadow = new Shadow(directory) { DurablyExists = true };
                var bytes = File.ReadAllBytes(path);
                shadow.Bytes.Write(bytes);
                shadow.Durable = bytes;
                _shadows[path] = shadow;
            }
        }
    }

    /// <summary>
    /// The journal folder's segment files as <paramref name="model"/> leaves them (file name → bytes). A kill keeps
    /// every byte written. A power cut keeps what each segment's last fsync covered, plus the first writes after it
    /// (the last of them perhaps cut short, and sometimes with the old bytes back where pages did not reach the
    /// disk); a directory entry created or deleted since the directory's last fsync may or may not survive.
    /// </summary>
    public Dictionary<string, byte[]> JournalImage(CrashModel model, Random random)
    {
        var image = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        lock (_lock)
        {
            foreach (var (path, s) in _shadows.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                var bytes = s.Bytes.ToArray();
                if (model == CrashModel.Kill)
                {
                    if (s.Exists) image[Path.GetFileName(path)] = bytes;
                    continue;
                }
                var present = s.Exists == s.DurablyExists ? s.Exists : random.Next(2) == 0;
                if (!present) continue;
                image[Path.GetFileName(path)] = s.PowerCutImage(random);
            }
        }
        return image;
    }

    /// <returns>The fault to act on, or null.</returns>
    private SeamFault? Enter(SeamCall call, string path, int length, bool zeroFill = false)
    {
        // With fsync the writer writes while its completer syncs: calls are numbered and decided one at a time,
        // and a death takes its image before the other thread's call goes on.
        lock (_lock) return EnterLocked(call, path, length, zeroFill);
    }

    // A zero fill (the zeros the journal writes ahead of its frames) is a write of the group commit being appended,
    // before its frame: it does not start a batch of its own.
    private SeamFault? EnterLocked(SeamCall call, string path, int length, bool zeroFill)
    {
        if (_dead) throw new IOException("The process is dead (test crash).");
        if (call == SeamCall.Write && !zeroFill) WritesStarted++;
        if (!Armed || Plan is null) return null;
        var fault = Plan(++_armedCalls, call, length);
        if (fault is null) return null;
        // A failed create or directory fsync (a segment roll) does not break the journal: it keeps the current segment.
        if (fault.Dies || call is SeamCall.Write or SeamCall.Sync) FaultedBatch ??= zeroFill ? WritesStarted : WritesStarted - 1;
        var kind = $"{(fault.Dies ? "death" : "failure")} in {call}" + call switch
        {
            SeamCall.Write => (zeroFill ? " of zeros" : "") + (fault.Bytes == 0 ? " (nothing written)" : fault.Bytes == length ? " (all written)" : " (cut)"),
            SeamCall.Sync when fault.Dies => fault.AfterSync ? " (after the fsync)" : " (before the fsync)",
            SeamCall.Sync => fault.PageCacheKeeps ? " (page cache keeps)" : " (page cache drops)",
            _ => "",
        };
        // Repeats of one fault (every roll failing for a while) are named once.
        var repeat = FaultKind?.EndsWith(kind, StringComparison.Ordinal) == true;
        if (!repeat) FaultKind = FaultKind is null ? kind : FaultKind + ", then " + kind;
        var description = $"{(fault.Dies ? "death" : "failure")} at armed seam call {_armedCalls} ({call} {Path.GetFileName(path)}, {length} bytes, {fault})";
        if (!repeat) FaultDescription = FaultDescription is null ? description : FaultDescription + ", then " + description;
        if (fault.Dies && call is SeamCall.Create or SeamCall.SyncDirectory) Die();
        return fault;
    }

    /// <summary>Kills the process now, from outside the seam (the writer must be idle): takes the crash image, then fails every later call.</summary>
    public void Kill()
    {
        // Under the lock: the other thread's seam call (the writer's write while the completer syncs) waits, as a dead process's would.
        lock (_lock)
        {
            OnDeath?.Invoke();
            _dead = true;
        }
    }

    private void Die()
    {
        Kill();
        throw new IOException("The process died here (test crash).");
    }

    private void Written(string path, ReadOnlySpan<byte> data, long offset)
    {
        lock (_lock) _shadows[path].Write(data, offset);
    }

    /// <summary>A segment as the process sees it (<see cref="Bytes"/>) and as its last fsync left it on the disk (<see cref="Durable"/>).</summary>
    private sealed class Shadow(string directory)
    {
        public string Directory { get; } = directory;
        public MemoryStream Bytes { get; } = new();
        public byte[] Durable { get; set; } = [];

        // Writes since the last fsync, in order: a power cut keeps some first ones of them.
        public List<(long Offset, byte[] Data)> Pending { get; } = [];
        public bool Exists { get; set; } = true;

        // Whether the entry existed as of the directory's last fsync.
        public bool DurablyExists { get; set; }

        public void Write(ReadOnlySpan<byte> data, long offset)
        {
            Bytes.Position = offset;
            Bytes.Write(data);
            Pending.Add((offset, data.ToArray()));
        }

        /// <summary>An fsync that began when <paramref name="covered"/> writes were pending has made them durable.</summary>
        public void Synced(int covered)
        {
            var durable = new MemoryStream();
            durable.Write(Durable);
            foreach (var (offset, data) in Pending.Take(covered))
            {
                durable.Position = offset;
                durable.Write(data);
            }
            Durable = durable.ToArray();
            Pending.RemoveRange(0, covered);
        }

        /// <summary>A failed fsync whose page cache dropped the unsynced writes: the file reads as the disk has it.</summary>
        public void DropUnsynced()
        {
            Bytes.SetLength(0);
            Bytes.Write(Durable);
            Pending.Clear();
        }

        public byte[] PowerCutImage(Random random)
        {
            var image = new MemoryStream();
            image.Write(Durable);
            var kept = random.Next(Pending.Count + 1);
            for (var i = 0; i < kept; i++)
            {
                var (offset, data) = Pending[i];
                var length = i == kept - 1 ? random.Next(data.Length + 1) : data.Length;
                if (i == kept - 1 && length < data.Length && random.Next(3) == 0)
                {
                    // The file's size reached the disk but not all of the write's pages: the old bytes (or zeros) stay.
                    var end = offset + data.Length;
                    if (image.Length < end) image.SetLength(end);
                }
                image.Position = offset;
                image.Write(data, 0, length);
            }
            return image.ToArray();
        }
    }

    private sealed class Segment(CrashingJournalFiles owner, string path, IJournalSegmentFile real) : IJournalSegmentFile
    {
        public void Write(ReadOnlySpan<byte> data, long offset)
        {
            var fault = owner.Enter(SeamCall.Write, path, data.Length, zeroFill: !data.ContainsAnyExcept((byte)0));
            if (fault is null)
            {
                real.Write(data, offset);
                owner.Written(path, data, offset);
                return;
            }
            var cut = data[..Math.Clamp(fault.Bytes, 0, data.Length)];
            real.Write(cut, offset);
            owner.Written(path, cut, offset);
            if (fault.Dies) owner.Die();
            throw new IOException("No space left on device (test: write failed after " + cut.Length + " bytes)");
        }

        public void Sync()
        {
            var fault = owner.Enter(SeamCall.Sync, path, 0);
            if (fault is null || (fault.Dies && fault.AfterSync))
            {
                // An fsync covers what was written before it began; a frame written meanwhile is not covered.
                int covered;
                lock (owner._lock) covered = owner._shadows[path].Pending.Count;
                real.Sync();
                lock (owner._lock) owner._shadows[path].Synced(covered);
                if (fault is not null) owner.Die();
                return;
            }
            if (fault.Dies) owner.Die();
            if (!fault.PageCacheKeeps)
            {
                lock (owner._lock) owner._shadows[path].DropUnsynced();
            }
            throw new IOException("Input/output error (test: fsync failed)");
        }

        public void Dispose() => real.Dispose();
    }
}
