using System.Diagnostics;

namespace HalfMsgBroker.Storage;

/// <summary>
/// Stores in LiteDB whatever the journal holds beyond the last frame LiteDB recorded, after checking that
/// nothing but a torn tail is damaged and that the frames follow LiteDB's number without a gap: anything
/// else is corruption, and the open is refused with every file left as it was. Salvage (the operator's
/// <c>journal salvage</c>) applies every intact frame anyway and moves the damaged segments to the quarantine.
/// </summary>
internal sealed class JournalReplay(LiteDbMessageStore db, string directory, ILogger logger, Action<ChangeSet> applyIsolatingPoison)
{
    private const int Chunk = 10_000;
    private const int Tries = 3;

    /// <returns>The last frame LiteDB now holds.</returns>
    public long Run(bool salvage, JournalQuarantine quarantine)
    {
        var started = Stopwatch.GetTimestamp();
        var applied = db.AppliedJournalSeq();
        var segments = JournalScan.Scan(directory);
        if (!salvage && JournalScan.Corruption(segments, applied) is { } problem) throw Corrupt(problem);

        var changes = new ChangeSet();
        var last = applied;
        int frames = 0, changeCount = 0;
        var damaged = new List<string>();
        for (var i = 0; i < segments.Count; i++)
        {
            var segment = segments[i];
            foreach (var d in segment.Damage)
            {
                if (JournalScan.IsTornTail(segments, i, d))
                {
                    logger.LogWarning(
                        "Journal segment {Segment} ends in a torn frame at byte offset {Offset}: {Bytes} bytes dropped (a write cut short by a crash, never acknowledged)",
                        segment.Name, d.Offset, d.Length);
                    continue;
                }
                logger.LogWarning("Salvage: skipping bytes {From}..{To} of journal segment {Segment} (unreadable)", d.Offset, d.Offset + d.Length - 1, segment.Name);
                if (!damaged.Contains(segment.Path)) damaged.Add(segment.Path);
            }
            JournalScan.ReadSegment(segment.Path, (seq, _, payload) =>
            {
                if (seq <= last) return;
                if (seq != last + 1) logger.LogWarning("Salvage: journal frames {From}..{To} are missing and skipped", last + 1, seq - 1);
                JournalRecords.Read(payload, changes);
                changes.LastSeq = last = seq;
                frames++;
                changeCount += JournalRecords.Count(payload);
                if (changes.Count < Chunk) return;
                Apply(changes);
                changes.Clear();
            });
        }
        if (last > applied)
        {
            changes.LastSeq = last;
            Apply(changes);
        }
        foreach (var path in damaged)
        {
            logger.LogWarning("Salvage: moved the damaged journal segment {Segment} to {Quarantine}", Path.GetFileName(path), quarantine.MoveSegment(path));
        }
        logger.LogInformation(
            "Journal replay: {Frames} frames ({Changes} changes) after LiteDB's frame {Applied} from {Segments} segments, in {Elapsed:F0} ms",
            frames, changeCount, applied, segments.Count, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return last;
    }

    /// <summary>
    /// The same check, before LiteDB is opened (opening it may checkpoint its log into the data file): a refused
    /// start leaves every file byte for byte as it was. The broker runs it first; the replay checks again.
    /// </summary>
    public static void Preflight(string dataPath, string journalDirectory)
    {
        if (!Directory.Exists(journalDirectory)) return;
        using var held = new DataPathLock(dataPath);
        var segments = JournalScan.Scan(journalDirectory);
        if (segments.Count == 0) return;
        if (JournalScan.Corruption(segments, LiteDbMessageStore.ReadAppliedJournalSeq(dataPath) ?? 0) is { } problem) throw Corrupt(problem);
    }

    private static JournalCorruptException Corrupt(string problem) => new(
        $"The journal is corrupt: {problem}. The broker will not start, and changed no file. " +
        "Run `dotnet HalfMsgBroker.Broker.dll journal verify` to see the damage, then `journal salvage` to apply every intact frame " +
        "and move the damaged segments to journal/quarantine/ (or restore the data folder from a backup).");

    private void Apply(ChangeSet changes)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                db.Apply(changes, updateFirst: true);
                return;
            }
            catch (Exception e) when (JournaledMessageStore.IsRefusal(e))
            {
                if (attempt < Tries) continue;
                logger.LogWarning(e, "LiteDB refused replayed changes {Tries} times; applying them one by one to quarantine the refused one", Tries);
                applyIsolatingPoison(changes);
                return;
            }
        }
    }
}

/// <summary>The journal holds damage other than a torn tail, or does not follow LiteDB's last frame: the broker refuses to start.</summary>
public sealed class JournalCorruptException(string message) : Exception(message);
