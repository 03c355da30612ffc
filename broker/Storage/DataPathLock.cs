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

    public DataPathLock(string dataPath)
    {
        var path = Path.Combine(dataPath, "broker.lock");
        try
        {
            _file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1);
        }
        catch (IOException e)
        {
            throw new IOException($"Another broker process is using the data folder {dataPath} ({path} is locked). Stop it, or give this broker its own Broker:DataPath.", e);
        }
    }

    public void Dispose() => _file.Dispose();
}
