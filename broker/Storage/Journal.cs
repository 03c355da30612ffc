using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using HalfMsgBroker.Configuration;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The append-only journal in front of LiteDB. Each group commit is one frame, written with one
/// write (and one fsync in <see cref="Durability.Fsync"/>) before any of its commands is answered;
/// LiteDB receives the same changes later, coalesced, and records the last frame it holds. So a
/// commit costs a sequential append instead of LiteDB's page-rewriting transaction.
/// Frame: payload length (u32), CRC-32C of sequence and payload (u32), sequence (u64), payload.
/// A frame cut short or failing its checksum ends the readable journal: it was never acknowledged.
/// Files are segments named by their first sequence; a segment is deleted once LiteDB holds all of it.
/// </summary>
internal sealed class Journal : IDisposable
{
    public const int HeaderBytes = 16;
    private const string Prefix = "journal-";
    private const string Extension = ".log";

    private readonly string _directory;
    private readonly bool _fsync;
    private readonly long _segmentBytes;
    private readonly Lock _segmentsLock = new();

    // Closed segments, oldest first, with the last sequence each holds.
    private readonly Queue<(string Path, long LastSeq)> _closed = new();
    private FileStream? _current;
    private string? _currentPath;
    private long _nextSeq;
    private bool _broken;

    private Journal(string directory, Durability durability, long segmentBytes)
    {
        _directory = directory;
        _fsync = durability == Durability.Fsync;
        _segmentBytes = Math.Max(1 << 20, segmentBytes);
    }

    /// <summary>
    /// Every intact frame after <paramref name="appliedSeq"/>, oldest first: what LiteDB does not hold yet.
    /// Reading stops for good at the first frame that is cut short, fails its checksum or breaks the
    /// sequence: what follows a gap cannot be applied without what the gap held.
    /// </summary>
    public static IEnumerable<(long Seq, byte[] Payload)> Unapplied(string directory, long appliedSeq)
    {
        if (!Directory.Exists(directory)) yield break;
        long? previous = null;
        foreach (var path in Segments(directory))
        {
            var complete = false;
            foreach (var (seq, payload, last) in ReadFrames(path))
            {
                if (last)
                {
                    complete = true;
                    break;
                }
                if (previous is { } p && seq != p + 1) yield break;
                previous = seq;
                if (seq > appliedSeq) yield return (seq, payload);
            }
            if (!complete) yield break;
        }
    }

    /// <summary>
    /// Starts a fresh segment at <paramref name="nextSeq"/>, deleting the old ones: call it only once
    /// LiteDB durably holds everything <see cref="Unapplied"/> returned.
    /// </summary>
    public static Journal Start(string directory, Durability durability, long segmentBytes, long nextSeq)
    {
        Directory.CreateDirectory(directory);
        foreach (var path in Segments(directory)) File.Delete(path);
        var journal = new Journal(directory, durability, segmentBytes) { _nextSeq = nextSeq };
        journal.OpenSegment();
        return journal;
    }

    /// <summary>
    /// Writer thread: appends one frame; when this returns, it survives a process crash (and with
    /// fsync, a power loss). The first <see cref="HeaderBytes"/> of <paramref name="frame"/> are
    /// left free by the caller for the header, so the payload is not copied.
    /// </summary>
    public long Append(Span<byte> frame)
    {
        if (_broken) throw new IOException("The journal failed an earlier write and takes no more until the broker restarts.");
        var seq = _nextSeq;
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)(frame.Length - HeaderBytes));
        BinaryPrimitives.WriteInt64LittleEndian(frame[8..], seq);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[4..], Checksum(frame[8..]));

        var file = _current!;
        var start = file.Position;
        try
        {
            file.Write(frame);
            if (_fsync) file.Flush(flushToDisk: true);
        }
        catch
        {
            // A partial frame must not sit in front of later ones: cut it off, or refuse all further writes.
            try
            {
                file.SetLength(start);
                file.Position = start;
            }
            catch (IOException)
            {
                _broken = true;
            }
            throw;
        }
        _nextSeq = seq + 1;
        if (file.Position >= _segmentBytes) TryRollSegment(seq);
        return seq;
    }

    /// <summary>Any thread: LiteDB now durably holds every frame up to <paramref name="appliedSeq"/>.</summary>
    public void Release(long appliedSeq)
    {
        lock (_segmentsLock)
        {
            while (_closed.TryPeek(out var oldest) && oldest.LastSeq <= appliedSeq)
            {
                _closed.Dequeue();
                File.Delete(oldest.Path);
            }
        }
    }

    /// <summary>Closes the journal; when LiteDB holds everything (<paramref name="allApplied"/>) no segment is left to read on the next start.</summary>
    public void Close(bool allApplied)
    {
        _current?.Dispose();
        _current = null;
        if (!allApplied) return;
        lock (_segmentsLock)
        {
            while (_closed.TryDequeue(out var segment)) File.Delete(segment.Path);
        }
        if (_currentPath is not null) File.Delete(_currentPath);
    }

    public void Dispose() => Close(allApplied: false);

    /// <summary>
    /// The frame is durable already, so nothing here may fail the append: if the next segment cannot be
    /// made now, frames keep going to the current one and the roll is tried again after the next frame.
    /// </summary>
    private void TryRollSegment(long lastSeq)
    {
        var previous = (_current!, _currentPath!);
        try
        {
            OpenSegment();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            (_current, _currentPath) = previous;
            return;
        }
        previous.Item1.Dispose();
        lock (_segmentsLock) _closed.Enqueue((previous.Item2, lastSeq));
    }

    private void OpenSegment()
    {
        var path = Path.Combine(_directory, Prefix + _nextSeq.ToString("D19", CultureInfo.InvariantCulture) + Extension);
        // No buffering: each frame is one write system call, in the OS cache when Append returns.
        var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 0);
        try
        {
            if (_fsync) SyncDirectory();
        }
        catch
        {
            file.Dispose();
            throw;
        }
        (_current, _currentPath) = (file, path);
    }

    // A new file's directory entry must be durable too, or a power loss could drop the whole segment.
    private void SyncDirectory() => DirectorySync.Flush(_directory);

    private static List<string> Segments(string directory) =>
        [.. Directory.GetFiles(directory, Prefix + "*" + Extension).Order(StringComparer.Ordinal)];

    /// <summary>The segment's intact frames, then an end marker (Last) only if the whole file was intact.</summary>
    private static IEnumerable<(long Seq, byte[] Payload, bool Last)> ReadFrames(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var at = 0;
        while (bytes.Length - at >= HeaderBytes)
        {
            var length = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at));
            if (length > bytes.Length - at - HeaderBytes) yield break;
            var body = bytes.AsSpan(at + 8, 8 + (int)length);
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 4)) != Checksum(body)) yield break;
            yield return (BinaryPrimitives.ReadInt64LittleEndian(body), body[8..].ToArray(), false);
            at += HeaderBytes + (int)length;
        }
        if (at == bytes.Length) yield return (0, [], true);
    }

    private static uint Checksum(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFF_FFFFu;
        var i = 0;
        for (; i + 8 <= data.Length; i += 8) crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++) crc = BitOperations.Crc32C(crc, data[i]);
        return ~crc;
    }
}
