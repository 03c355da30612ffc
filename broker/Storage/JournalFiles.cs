namespace HalfMsgBroker.Storage;

/// <summary>
/// The journal's segment files, behind a seam so a test can fail a write or an fsync, cut a write short,
/// or model a power cut (which needs to see file deletions and directory fsyncs too). One interface
/// call per write and per fsync, nothing allocated: the hot path costs what a bare FileStream does.
/// </summary>
public interface IJournalFiles
{
    /// <summary>Creates a new, empty segment file that nobody else writes.</summary>
    IJournalSegmentFile Create(string path);

    /// <summary>Deletes a segment file LiteDB durably holds (durable itself only after a later <see cref="SyncDirectory"/>).</summary>
    void Delete(string path);

    /// <summary>fsync of the directory: its new and deleted entries survive a power loss once this returns.</summary>
    void SyncDirectory(string directory);
}

/// <summary>One open segment: writes at an offset, and the fsync that makes them survive a power loss.</summary>
public interface IJournalSegmentFile : IDisposable
{
    /// <summary>One write system call at <paramref name="offset"/>: in the OS cache when it returns.</summary>
    void Write(ReadOnlySpan<byte> data, long offset);

    /// <summary>
    /// fdatasync: the data written before the call, and the file size, are on the device when it returns (not the
    /// timestamps, which nothing reads). After a failure the file's state is unknown.
    /// </summary>
    void Sync();
}

/// <summary>The real files: positioned writes on an unbuffered handle.</summary>
public sealed class JournalFiles : IJournalFiles
{
    public static readonly JournalFiles Real = new();

    public IJournalSegmentFile Create(string path) =>
        new Segment(new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 0));

    public void Delete(string path) => File.Delete(path);

    public void SyncDirectory(string directory) => DirectorySync.Flush(directory);

    private sealed class Segment(FileStream file) : IJournalSegmentFile
    {
        public void Write(ReadOnlySpan<byte> data, long offset) => RandomAccess.Write(file.SafeFileHandle, data, offset);

        public void Sync()
        {
            // fsync would also write the inode's new modification time at every call: a journal commit of its own
            // even when the write only overwrote space the file already had (see Journal's zeroed space).
            if (!OperatingSystem.IsLinux())
            {
                file.Flush(flushToDisk: true);
                return;
            }
            if (FileSync.Fdatasync(file.SafeFileHandle) != 0)
            {
                throw new IOException($"fdatasync of {file.Name} failed (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}).");
            }
        }

        public void Dispose() => file.Dispose();
    }
}

/// <summary>A journal write or fsync failed: the broker takes no more writes and must restart (the journal is then replayed).</summary>
public sealed class JournalFailedException(string message, Exception inner) : IOException(message, inner);
