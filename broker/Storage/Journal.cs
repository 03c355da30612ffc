using System.Buffers.Binary;
using System.Numerics;
using HalfMsgBroker.Configuration;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The append-only journal in front of LiteDB. Each group commit is one frame, written with one
/// write (and one fsync in <see cref="Durability.Fsync"/>) before any of its commands is answered;
/// LiteDB receives the same changes later, coalesced, and records the last frame it holds. So a
/// commit costs a sequential append instead of LiteDB's page-rewriting transaction.
/// In <see cref="Durability.Fsync"/> the fsync is a separate step (<see cref="Sync"/>, called by the
/// writer's completer thread), so the writer builds and writes the next frame while the previous one
/// is being synced; one fsync covers every frame written before it began (group commit, pipelined).
/// Frame: payload length (u32), CRC-32C of sequence and payload (u32), sequence (u64), payload.
/// Files are segments named by their first sequence; a segment is deleted once LiteDB holds all of it.
/// With fsync, the writer keeps zeros written ahead of the frames (<see cref="ZeroChunkBytes"/> at a time, up to the
/// segment's size), so a frame overwrites space the file already has and its fdatasync writes data, not the file's
/// new size: no filesystem journal commit per group commit (on this machine 0.1–0.2 ms instead of 0.3–0.5 ms). The
/// scan reads zeros after the last frame as the segment's end, not as damage.
/// Reading and judging damage is <see cref="JournalScan"/>'s job. A failed write or fsync breaks the
/// journal for good: after a failed fsync the page cache's state is unknown ("fsyncgate"), so nothing
/// is retried on the file and the broker must restart and replay.
/// </summary>
internal sealed class Journal : IDisposable
{
    public const int HeaderBytes = 16;

    /// <summary>How much zeroed space the writer adds at a time, once less than half of it is left ahead of the frames.</summary>
    public const int ZeroChunkBytes = 1024 * 1024;
    private static readonly byte[] Zeros = new byte[ZeroChunkBytes];

    /// <summary>The smallest segment size honoured (the fault-injection tests use it to roll segments often).</summary>
    public const long MinSegmentBytes = 64 * 1024;
    private readonly string _directory;
    private readonly IJournalFiles _files;
    private readonly bool _fsync;
    private readonly long _segmentBytes;
    private readonly Lock _segmentsLock = new();

    // Taken by Sync and by a segment roll, so an fsync never meets a segment being closed.
    private readonly Lock _syncLock = new();
    private long _writtenSeq;
    private long _syncedSeq;

    // Closed segments, oldest first, with the last sequence each holds.
    private readonly Queue<(string Path, long LastSeq)> _closed = new();
    private IJournalSegmentFile? _current;
    private string? _currentPath;
    private long _currentLength;

    // Where the current segment's written bytes (frames, then zeros) end.
    private long _zeroedTo;
    private long _nextSeq;
    private bool _broken;

    private Journal(string directory, Durability durability, long segmentBytes, IJournalFiles files)
    {
        _directory = directory;
        _files = files;
        _fsync = durability == Durability.Fsync;
        _segmentBytes = Math.Max(MinSegmentBytes, segmentBytes);
    }

    /// <summary>
    /// Starts a fresh segment at <paramref name="nextSeq"/>, deleting the old ones: call it only once
    /// LiteDB durably holds every intact frame the replay read.
    /// </summary>
    public static Journal Start(string directory, Durability durability, long segmentBytes, long nextSeq, IJournalFiles files)
    {
        Directory.CreateDirectory(directory);
        foreach (var path in JournalScan.Segments(directory)) files.Delete(path);
        var journal = new Journal(directory, durability, segmentBytes, files) { _nextSeq = nextSeq, _writtenSeq = nextSeq - 1, _syncedSeq = nextSeq - 1 };
        journal.OpenSegment();
        return journal;
    }

    /// <summary>True when frames need <see cref="Sync"/> before they count as durable.</summary>
    public bool SyncsSeparately => _fsync;

    /// <summary>The last frame that survives a power loss (with fsync) or a process crash (without).</summary>
    public long SyncedSeq => Volatile.Read(ref _syncedSeq);

    /// <summary>
    /// Writer thread: appends one frame; when this returns, it survives a process crash (with fsync,
    /// a power loss once <see cref="Sync"/> has covered it). The first <see cref="HeaderBytes"/> of <paramref name="frame"/> are
    /// left free by the caller for the header, so the payload is not copied.
    /// </summary>
    public long Append(Span<byte> frame)
    {
        if (_broken) throw new JournalFailedException("The journal failed an earlier write and takes no more until the broker restarts.", new IOException("journal broken"));
        var seq = _nextSeq;
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)(frame.Length - HeaderBytes));
        BinaryPrimitives.WriteInt64LittleEndian(frame[8..], seq);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[4..], Checksum(frame[8..]));

        try
        {
            if (_fsync) ZeroAhead(_currentLength + frame.Length);
            _current!.Write(frame, _currentLength);
        }
        catch (Exception e)
        {
            throw Broken(e);
        }
        _currentLength += frame.Length;
        _nextSeq = seq + 1;
        Volatile.Write(ref _writtenSeq, seq);
        if (!_fsync) Volatile.Write(ref _syncedSeq, seq);
        if (_currentLength >= _segmentBytes) TryRollSegment(seq);
        return seq;
    }

    // Zeros go out a chunk before the frames need them, so the fsync that makes them (and the file's size) durable is
    // one of every chunk's, not each frame's. A frame larger than what is left simply extends the file.
    private void ZeroAhead(long frameEnd)
    {
        if (_zeroedTo >= _segmentBytes || frameEnd + ZeroChunkBytes / 2 <= _zeroedTo) return;
        var from = Math.Max(_zeroedTo, frameEnd);
        var length = (int)Math.Min(ZeroChunkBytes, _segmentBytes - from);
        if (length > 0) _current!.Write(Zeros.AsSpan(0, length), from);
        _zeroedTo = Math.Max(frameEnd, from + Math.Max(0, length));
    }

    /// <summary>
    /// One thread at a time, beside the writer: fsyncs the current segment, making every frame written
    /// before the call durable, and returns the last of them. Concurrent appends are fine: a write
    /// and an fsync of one file do not exclude each other, and a frame written during the fsync is
    /// simply covered by the next one.
    /// </summary>
    public long Sync()
    {
        lock (_syncLock)
        {
            if (_broken) throw new JournalFailedException("The journal failed an earlier write and takes no more until the broker restarts.", new IOException("journal broken"));
            var target = Volatile.Read(ref _writtenSeq);
            if (target <= _syncedSeq) return _syncedSeq;
            try
            {
                _current!.Sync();
            }
            catch (Exception e)
            {
                throw Broken(e);
            }
            Volatile.Write(ref _syncedSeq, target);
            return target;
        }
    }

    // Not cut back and retried: after a failed write or fsync what the file holds is unknown.
    private JournalFailedException Broken(Exception e)
    {
        _broken = true;
        return new JournalFailedException($"Writing the journal segment {_currentPath} failed ({e.Message}); the broker takes no more writes and must restart to replay the journal.", e);
    }

    /// <summary>Any thread: LiteDB now durably holds every frame up to <paramref name="appliedSeq"/>.</summary>
    public void Release(long appliedSeq)
    {
        lock (_segmentsLock)
        {
            while (_closed.TryPeek(out var oldest) && oldest.LastSeq <= appliedSeq)
            {
                _closed.Dequeue();
                _files.Delete(oldest.Path);
            }
        }
    }

    /// <summary>Closes the journal; when LiteDB holds everything (<paramref name="allApplied"/>) no segment is left to read on the next start.</summary>
    public void Close(bool allApplied)
    {
        lock (_syncLock) _current?.Dispose();
        _current = null;
        // A broken journal is kept whole: the next start judges it.
        if (!allApplied || _broken) return;
        lock (_segmentsLock)
        {
            while (_closed.TryDequeue(out var segment)) _files.Delete(segment.Path);
        }
        if (_currentPath is not null) _files.Delete(_currentPath);
    }

    public void Dispose() => Close(allApplied: false);

    /// <summary>
    /// The frame is written already, so nothing here may fail the append: if the next segment cannot be
    /// made now, frames keep going to the current one and the roll is tried again after the next frame.
    /// A failed fsync of the closing segment breaks the journal; the frame's caller learns it from <see cref="Sync"/>.
    /// </summary>
    private void TryRollSegment(long lastSeq)
    {
        lock (_syncLock)
        {
            // The closing segment's unsynced tail is synced here: Sync only ever reaches the current one.
            if (_fsync && _syncedSeq < lastSeq)
            {
                try
                {
                    _current!.Sync();
                }
                catch (Exception e)
                {
                    // The frame was answered by nobody yet; Append's caller sees the failure through Sync.
                    Broken(e);
                    return;
                }
                Volatile.Write(ref _syncedSeq, lastSeq);
            }
            var previous = (_current!, _currentPath!, _currentLength, _zeroedTo);
            try
            {
                OpenSegment();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                (_current, _currentPath, _currentLength, _zeroedTo) = previous;
                return;
            }
            previous.Item1.Dispose();
            lock (_segmentsLock) _closed.Enqueue((previous.Item2, lastSeq));
        }
    }

    private void OpenSegment()
    {
        var path = JournalScan.SegmentPath(_directory, _nextSeq);
        // No buffering: each frame is one write system call, in the OS cache when Append returns.
        var file = _files.Create(path);
        try
        {
            if (_fsync) SyncDirectory();
        }
        catch
        {
            file.Dispose();
            throw;
        }
        (_current, _currentPath, _currentLength, _zeroedTo) = (file, path, 0, 0);
    }

    // A new file's directory entry must be durable too, or a power loss could drop the whole segment.
    private void SyncDirectory() => _files.SyncDirectory(_directory);

    internal static uint Checksum(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFF_FFFFu;
        var i = 0;
        for (; i + 8 <= data.Length; i += 8) crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++) crc = BitOperations.Crc32C(crc, data[i]);
        return ~crc;
    }
}
