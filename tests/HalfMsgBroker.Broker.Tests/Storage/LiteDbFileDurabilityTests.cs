using HalfMsgBroker.Configuration;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>LiteDB's own files around a power cut and a refused start (found by the journal's crash-point suite and by reading LiteDB).</summary>
[Trait("Storage", "LiteDb")]
public sealed class LiteDbFileDurabilityTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-litedb-files", Guid.NewGuid().ToString("N"));

    public LiteDbFileDurabilityTests() => Directory.CreateDirectory(_path);

    public void Dispose() => BrokerFactory.TryDelete(_path);

    private string LogFile => Path.Combine(_path, "broker-log.db");

    [Fact]
    public void The_first_flush_of_LiteDBs_log_also_makes_its_directory_entry_durable_once()
    {
        // LiteDB creates its log at the first write after an open and never fsyncs the folder: a power cut could
        // take the whole file, with commits whose journal segments are already deleted.
        var synced = new List<string>();
        using var sync = new LogFileSync(Path.Combine(_path, "broker.db"), synced.Add);

        sync.Flush();
        Assert.Empty(synced); // no log yet: nothing to make durable

        File.WriteAllBytes(LogFile, new byte[8192]);
        sync.Flush();
        sync.Flush();
        Assert.Equal([_path], synced);
    }

    [Fact]
    public void Reading_LiteDBs_journal_mark_before_a_start_keeps_an_empty_log_file()
    {
        // A refused start changes no file; LiteDB's read-only open deletes an empty log when it closes.
        new LiteDbMessageStore(_path, Durability.Process).Dispose();
        File.WriteAllBytes(LogFile, []);

        Assert.Equal(0, LiteDbMessageStore.ReadAppliedJournalSeq(_path));

        Assert.True(File.Exists(LogFile));
        Assert.Equal(0, new FileInfo(LogFile).Length);
    }
}
