namespace HalfMsgBroker.Storage;

/// <summary>
/// Flushes LiteDB's write-ahead log to the disk after a group commit. LiteDB writes committed pages
/// to its log file with plain writes (in the OS cache: safe from a process crash, not from a power
/// loss) and exposes no fsync; fsync flushes a file's dirty pages whatever handle wrote them, so a
/// second handle on the same file is enough. LiteDB creates the log file at its first write after an
/// open (a clean close deletes it) and never fsyncs the folder: the first flush also makes the file's
/// directory entry durable, or a power loss could take the whole log — commits whose journal segments
/// are already deleted — with it.
/// </summary>
internal sealed class LogFileSync(string dataFile, Action<string>? syncDirectory = null) : IDisposable
{
    private readonly string _logFile = Path.Combine(
        Path.GetDirectoryName(dataFile)!, Path.GetFileNameWithoutExtension(dataFile) + "-log" + Path.GetExtension(dataFile));

    private readonly Action<string> _syncDirectory = syncDirectory ?? DirectorySync.Flush;
    private FileStream? _log;

    public void Flush()
    {
        if (_log is null)
        {
            if (!File.Exists(_logFile)) return; // nothing was written to the log yet
            _log = new FileStream(_logFile, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, 1);
            _log.Flush(flushToDisk: true);
            _syncDirectory(Path.GetDirectoryName(_logFile)!);
            return;
        }
        _log.Flush(flushToDisk: true);
    }

    public void Dispose() => _log?.Dispose();
}
