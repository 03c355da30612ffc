using System.Buffers.Binary;
using System.Globalization;

namespace HalfMsgBroker.Storage;

/// <summary>One intact frame: its sequence, byte offset in the segment, and payload (valid only during the call).</summary>
internal delegate void FrameVisitor(long seq, long offset, ReadOnlySpan<byte> payload);

/// <summary>Bytes of a segment that do not read as intact frames: from <see cref="Offset"/>, <see cref="Length"/> bytes.</summary>
internal sealed record JournalDamage(long Offset, long Length, bool ToEnd);

/// <summary>What one segment file holds: its intact frames and any damage between or after them.</summary>
internal sealed record SegmentReport(string Path, long Bytes, int Frames, int Changes, long FirstSeq, long LastSeq, IReadOnlyList<JournalDamage> Damage)
{
    public string Name => System.IO.Path.GetFileName(Path);
}

/// <summary>
/// Reads journal segments without changing them, and tells a torn tail (the last write of the last
/// segment, cut short by a crash: never acknowledged) from corruption (damage with intact frames after
/// it, or a sequence that does not follow LiteDB's recorded number): only the first is safe to drop.
/// </summary>
internal static class JournalScan
{
    public const string Prefix = "journal-";
    public const string Extension = ".log";

    // How far past the last good sequence a frame found after damage may be (a resync, not a coincidence).
    private const long ResyncWindow = 1 << 20;

    public static List<string> Segments(string directory) =>
        Directory.Exists(directory) ? [.. Directory.GetFiles(directory, Prefix + "*" + Extension).Order(StringComparer.Ordinal)] : [];

    public static string SegmentPath(string directory, long firstSeq) =>
        System.IO.Path.Combine(directory, Prefix + firstSeq.ToString("D19", CultureInfo.InvariantCulture) + Extension);

    public static List<SegmentReport> Scan(string directory)
    {
        var reports = new List<SegmentReport>();
        foreach (var path in Segments(directory))
        {
            int frames = 0, changes = 0;
            long first = 0, last = 0;
            var damage = ReadSegment(path, (seq, _, payload) =>
            {
                if (frames++ == 0) first = seq;
                last = seq;
                changes += JournalRecords.Count(payload);
            }, out var used);
            reports.Add(new SegmentReport(path, used, frames, changes, first, last, damage));
        }
        return reports;
    }

    /// <summary>
    /// Why replay must not go on (null when it may): damage anywhere but a torn tail, or frames beyond
    /// <paramref name="appliedSeq"/> that do not start right after it or skip a number.
    /// </summary>
    public static string? Corruption(IReadOnlyList<SegmentReport> segments, long appliedSeq)
    {
        for (var i = 0; i < segments.Count; i++)
        {
            var s = segments[i];
            foreach (var d in s.Damage)
            {
                if (IsTornTail(segments, i, d)) continue;
                return $"segment {s.Path} is damaged at byte offset {d.Offset} ({d.Length} bytes unreadable) with intact frames after it";
            }
        }
        var expected = appliedSeq + 1;
        foreach (var s in segments)
        {
            if (s.Frames == 0 || s.LastSeq <= appliedSeq) continue;
            var gap = FirstGap(s.Path, appliedSeq, ref expected);
            if (gap is not null) return gap;
        }
        return null;
    }

    /// <summary>
    /// Damage that is the one write a crash cut short: it runs to the end of the last segment holding any bytes.
    /// Empty segments may follow it: a roll whose folder fsync failed leaves its new file behind, and the journal
    /// goes on writing to the old one.
    /// </summary>
    public static bool IsTornTail(IReadOnlyList<SegmentReport> segments, int index, JournalDamage damage)
    {
        if (!damage.ToEnd || segments[index].Damage.Count != 1) return false;
        for (var i = index + 1; i < segments.Count; i++)
        {
            if (segments[i].Bytes > 0) return false;
        }
        return true;
    }

    /// <summary>
    /// The segment's intact frames, in file order, to <paramref name="frame"/> (the payload is valid only during the call);
    /// returns the damage found. After damage, reading resumes at the next intact frame, if any.
    /// </summary>
    public static List<JournalDamage> ReadSegment(string path, FrameVisitor frame) => ReadSegment(path, frame, out _);

    /// <param name="used">Where the segment's content ends: the zeros the writer put ahead of its frames (see
    /// <see cref="Journal"/>) are free space, not damage. A frame cut short by a crash in that space is still damage.</param>
    public static List<JournalDamage> ReadSegment(string path, FrameVisitor frame, out long used)
    {
        var bytes = File.ReadAllBytes(path);
        var damage = new List<JournalDamage>();
        var expected = FirstSeqOf(path);
        var at = 0;
        used = bytes.Length;
        while (at < bytes.Length)
        {
            if (TryFrame(bytes, at, out var seq, out var length))
            {
                frame(seq, at, bytes.AsSpan(at + Journal.HeaderBytes, length));
                expected = seq + 1;
                at += Journal.HeaderBytes + length;
                continue;
            }
            if (!bytes.AsSpan(at).ContainsAnyExcept((byte)0))
            {
                used = at;
                break;
            }
            var next = Resync(bytes, at + 1, expected);
            damage.Add(new JournalDamage(at, (next ?? bytes.Length) - at, next is null));
            if (next is null) break;
            at = next.Value;
        }
        return damage;
    }

    private static string? FirstGap(string path, long appliedSeq, ref long expected)
    {
        string? gap = null;
        var next = expected;
        ReadSegment(path, (seq, offset, payload) =>
        {
            if (gap is not null || seq <= appliedSeq) return;
            if (seq != next)
            {
                gap = $"segment {path} holds frame {seq} at byte offset {offset} where frame {next} was expected (LiteDB holds up to {appliedSeq}): frames {next}..{seq - 1} are missing";
            }
            next = seq + 1;
        });
        expected = next;
        return gap;
    }

    private static int? Resync(byte[] bytes, int from, long expected)
    {
        for (var at = from; at + Journal.HeaderBytes <= bytes.Length; at++)
        {
            var seq = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(at + 8));
            // Only a plausible sequence number is worth a checksum: the scan stays linear in practice.
            if (seq < expected || seq - expected > ResyncWindow) continue;
            if (TryFrame(bytes, at, out _, out _)) return at;
        }
        return null;
    }

    private static bool TryFrame(byte[] bytes, int at, out long seq, out int length)
    {
        seq = 0;
        length = 0;
        if (bytes.Length - at < Journal.HeaderBytes) return false;
        var declared = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at));
        if (declared > bytes.Length - at - Journal.HeaderBytes) return false;
        var body = bytes.AsSpan(at + 8, 8 + (int)declared);
        if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 4)) != Journal.Checksum(body)) return false;
        seq = BinaryPrimitives.ReadInt64LittleEndian(body);
        length = (int)declared;
        return true;
    }

    private static long FirstSeqOf(string path)
    {
        var name = System.IO.Path.GetFileNameWithoutExtension(path);
        return long.TryParse(name.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var seq) ? seq : 1;
    }
}
