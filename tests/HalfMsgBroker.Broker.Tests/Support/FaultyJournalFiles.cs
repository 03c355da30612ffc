using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Tests.Support;

/// <summary>The real journal files, except that a test can make the next write or fsync fail.</summary>
public sealed class FaultyJournalFiles : IJournalFiles
{
    public volatile bool FailWrites;
    public volatile bool FailSyncs;
    private int _writes;
    private int _syncs;

    /// <summary>Writes and fsyncs that reached the real file.</summary>
    public int Writes => Volatile.Read(ref _writes);
    public int Syncs => Volatile.Read(ref _syncs);

    public IJournalSegmentFile Create(string path) => new Segment(this, JournalFiles.Real.Create(path));

    public void Delete(string path) => JournalFiles.Real.Delete(path);

    public void SyncDirectory(string directory) => JournalFiles.Real.SyncDirectory(directory);

    private sealed class Segment(FaultyJournalFiles owner, IJournalSegmentFile real) : IJournalSegmentFile
    {
        public void Write(ReadOnlySpan<byte> data, long offset)
        {
            if (owner.FailWrites) throw new IOException("No space left on device (test)");
            real.Write(data, offset);
            Interlocked.Increment(ref owner._writes);
        }

        public void Sync()
        {
            if (owner.FailSyncs) throw new IOException("Input/output error (test fsync)");
            real.Sync();
            Interlocked.Increment(ref owner._syncs);
        }

        public void Dispose() => real.Dispose();
    }
}
