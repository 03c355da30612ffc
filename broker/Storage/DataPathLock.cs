namespace HalfMsgBroker.Storage;

/// <summary>
/// Holds <c>broker.lock</c> in the data folder open without sharing for as long as the store is open,
/// so a second broker started on the same folder fails at once instead of writing LiteDB's file and
/// the journal beside the first (LiteDB does not stop a second process; on Linux .NET takes an
/// advisory lock for an unshared open, which every broker honours). A crash releases it.
/// </summary>
internal sealed class DataPathLock : IDisposable
{
    private readonly FileStream _file;

    /// <summary>
    /// How long a held lock is waited for before giving up. A lock can be held for a moment by a process
    /// that is not a broker: a child forked by this process holds a copy of the descriptor until it execs
    /// (tests starting brokers next to child processes hit that), and a broker being restarted may still be
    /// closing its files. A second running broker holds it for good, so the wait only delays its refusal.
    /// </summary>
    private static readonly TimeSpan HeldWait = TimeSpan.FromSeconds(3);

    public DataPathLock(string dataPath)
    {
        var path = Path.Combine(dataPath, "broker.lock");
        var deadline = Environment.TickCount64 + (long)HeldWait.TotalMilliseconds;
        while (true)
        {
            try
            {
                _file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1);
                return;
            }
            catch (IOException e) when (Environment.TickCount64 >= deadline)
            {
                throw new IOException($"Another broker process is using the data folder {dataPath} ({path} is locked). Stop it, or give this broker its own Broker:DataPath.", e);
            }
            catch (IOException)
            {
                Thread.Sleep(50); // start-up only: nothing else runs on this thread yet
            }
        }
    }

    public void Dispose() => _file.Dispose();
}
