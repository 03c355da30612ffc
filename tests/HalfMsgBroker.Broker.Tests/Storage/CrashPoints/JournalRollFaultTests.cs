using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage.CrashPoints;

/// <summary>A segment roll whose folder fsync failed, then a crash mid-write: regression for what the crash-point suite's roll faults found.</summary>
[Trait("Storage", "LiteDb")]
public sealed class JournalRollFaultTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-roll-fault", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_path);

    private string JournalPath => Path.Combine(_path, "journal");

    private JournaledMessageStore Open(IJournalFiles? files = null) => new(
        new LiteDbMessageStore(_path, Durability.Fsync), JournalPath,
        new StorageOptions { Durability = Durability.Fsync, JournalSegmentBytes = Journal.MinSegmentBytes, ApplyDelay = TimeSpan.FromHours(1) },
        _ => { }, files: files);

    private static StoredMessage Plain(int n) => new()
    {
        Id = Guid.CreateVersion7(),
        Topic = "orders",
        Body = new byte[1000],
        IdempotencyKey = "key-" + n,
        State = MessageState.Committed,
        BornAt = 1,
    };

    [Fact]
    public void A_crash_mid_write_after_a_failed_segment_roll_drops_only_the_torn_write()
    {
        // The roll's folder fsync fails: the journal keeps writing to the old segment, and each new, empty file stays
        // behind. A crash then cuts a write of the old segment short: a torn tail, though not in the last file.
        var files = new CrashingJournalFiles();
        var failedRollAt = 0;
        files.Plan = (n, call, length) =>
        {
            // The folder cannot be fsynced for a while: every roll fails, and the journal stays on its segment.
            if (call == SeamCall.SyncDirectory)
            {
                if (failedRollAt == 0) failedRollAt = n;
                return new SeamFault(Dies: false);
            }
            return failedRollAt > 0 && n > failedRollAt + 6 && call == SeamCall.Write ? new SeamFault(Dies: true, Bytes: length / 2) : null;
        };
        var store = Open(files);
        files.Armed = true;
        var acked = new List<StoredMessage>();
        for (var n = 0; !files.Dead; n++)
        {
            Assert.True(n < 10_000, "the plan never crashed the journal");
            var message = Plain(n);
            try
            {
                store.RunBatch(() => store.Insert(message));
                acked.Add(message);
            }
            catch (StoreUnavailableException)
            {
            }
        }
        store.DisposeAsIfCrashed();
        Assert.Contains(Directory.GetFiles(JournalPath, "journal-*.log"), f => new FileInfo(f).Length == 0);

        using var reopened = Open();
        Assert.All(acked, m => Assert.NotNull(reopened.Find(m.Id)));
    }
}
