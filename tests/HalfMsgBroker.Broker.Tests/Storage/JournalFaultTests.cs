using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>
/// What the store does when LiteDB refuses one change (it is quarantined, the rest stored) and when the
/// journal cannot write or fsync (the batch and every later one fail; nothing is retried on the file).
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class JournalFaultTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-fault-tests", Guid.NewGuid().ToString("N"));
    private readonly ListLogger _log = new();
    private int _applyErrors;

    public void Dispose() => BrokerFactory.TryDelete(_path);

    private string JournalPath => Path.Combine(_path, "journal");

    private string QuarantinePath => Path.Combine(JournalPath, "quarantine");

    private JournaledMessageStore Open(
        LiteDbMessageStore db, TimeSpan applyDelay, IJournalFiles? files = null, Action<Exception>? journalFailed = null, Durability durability = Durability.Process) => new(
        db, JournalPath, new StorageOptions { ApplyDelay = applyDelay, Durability = durability },
        _ => Interlocked.Increment(ref _applyErrors), _log, files, journalFailed);

    private static StoredMessage Half(string tx) => new()
    {
        Id = Guid.CreateVersion7(),
        Topic = "orders",
        Body = "{}"u8.ToArray(),
        TransactionId = tx,
        ProducerGroup = "order-service",
        State = MessageState.Prepared,
        BornAt = 1,
        NextCheckAt = 100,
    };

    [Fact]
    public void A_batch_after_a_journal_failure_or_once_the_store_is_closing_is_refused_as_unavailable_not_as_an_error()
    {
        // The writer retries a failed group commit one command at a time while the failure stops the host, which
        // closes the store: those retries must answer 503 (storage unavailable), never 500 (ObjectDisposedException).
        var files = new FaultyJournalFiles();
        var store = Open(new LiteDbMessageStore(_path, Durability.Process), TimeSpan.FromMilliseconds(10), files);
        files.FailWrites = true;
        Assert.Throws<StoreUnavailableException>(() => store.RunBatch(() => store.Insert(Half("a"))));
        files.FailWrites = false;
        store.Dispose();
        var refused = Assert.Throws<StoreUnavailableException>(() => store.RunBatch(() => store.Insert(Half("b"))));
        Assert.Contains("journal write or fsync failed", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_batch_once_the_store_is_closing_is_refused_as_unavailable()
    {
        var store = Open(new LiteDbMessageStore(_path, Durability.Process), TimeSpan.FromMilliseconds(10));
        store.Dispose();
        var refused = Assert.Throws<StoreUnavailableException>(() => store.RunBatch(() => store.Insert(Half("c"))));
        Assert.Contains("stopping", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_change_LiteDB_keeps_refusing_is_quarantined_and_the_rest_of_its_batch_is_stored()
    {
        var db = new LiteDbMessageStore(_path, Durability.Process);
        using var store = Open(db, TimeSpan.FromMilliseconds(10));
        // Behind the journal's back, so the store accepts the key and LiteDB's unique index refuses it at apply.
        // Only once the store has counted its stored keys: a count still reading would find this one.
        await Eventually.Until(() => store.KeysCounted, "the stored keys counted");
        db.Insert(Half("tx-dup"));
        var poison = Half("tx-dup");
        var fine = Half("tx-fine");
        store.RunBatch(() =>
        {
            store.Insert(poison);
            store.Insert(fine);
            store.SaveProducerGroup(new ProducerGroup("order-service", "http://127.0.0.1:1/check", 2000));
        });

        await Eventually.Until(() => store.QuarantinedCount == 1, "the refused change quarantined", TimeSpan.FromSeconds(30));
        await Eventually.Until(() => store.UnappliedCount == 0, "the rest applied");
        Assert.True(Volatile.Read(ref _applyErrors) >= 3);
        Assert.Null(db.Find(poison.Id));
        Assert.NotNull(db.Find(fine.Id));
        Assert.NotNull(db.GetProducerGroup("order-service"));
        var file = Assert.Single(Directory.GetFiles(QuarantinePath));
        Assert.Contains(poison.Id.ToString(), file, StringComparison.Ordinal);
        Assert.Contains("\"tx-dup\"", File.ReadAllText(file), StringComparison.Ordinal);
        Assert.Contains(_log.Lines, l => l.Level == LogLevel.Error && l.Message.Contains(poison.Id.ToString(), StringComparison.Ordinal));

        // Still serving: later changes are applied, and LiteDB is not "failing" any more.
        var later = Half("tx-later");
        store.RunBatch(() => store.Insert(later));
        // An index query: it answers once LiteDB holds everything journaled so far.
        Assert.Contains(store.DueChecks(long.MaxValue, 10), m => m.Id == later.Id);
        Assert.NotNull(db.Find(later.Id));
        Assert.Equal(TimeSpan.Zero, store.ApplyFailingFor);
    }

    [Fact]
    public async Task A_change_LiteDB_refuses_at_replay_is_quarantined_and_the_store_opens_with_the_rest()
    {
        var db = new LiteDbMessageStore(_path, Durability.Process);
        var store = Open(db, TimeSpan.FromHours(1));
        await Eventually.Until(() => store.KeysCounted, "the stored keys counted");
        db.Insert(Half("tx-dup"));
        var poison = Half("tx-dup");
        var fine = Half("tx-fine");
        store.RunBatch(() =>
        {
            store.Insert(poison);
            store.Insert(fine);
        });
        store.DisposeAsIfCrashed();

        using var reopened = Open(new LiteDbMessageStore(_path, Durability.Process), TimeSpan.FromHours(1));
        Assert.Equal(1, reopened.QuarantinedCount);
        Assert.NotNull(reopened.Find(fine.Id));
        Assert.Null(reopened.Find(poison.Id));
        Assert.Contains(poison.Id.ToString(), Assert.Single(Directory.GetFiles(QuarantinePath)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task After_a_failed_fsync_an_index_query_is_refused_at_once_instead_of_waiting_for_an_applier_that_has_stopped()
    {
        var files = new FaultyJournalFiles();
        using var store = Open(new LiteDbMessageStore(_path, Durability.Fsync), TimeSpan.FromHours(1), files, durability: Durability.Fsync);
        // Long enough that waiting it out cannot pass for an answer: the background services that query the
        // indexes would otherwise hold the host's shutdown that long.
        store.CatchUpTimeout = TimeSpan.FromMinutes(10);
        store.RunBatch(() => store.Insert(Half("tx-kept")));
        store.MakeDurable(store.WrittenPosition);
        files.FailSyncs = true;
        store.RunBatch(() => store.Insert(Half("tx-unsynced")));
        Assert.Throws<StoreUnavailableException>(() => store.MakeDurable(store.WrittenPosition));

        var query = Task.Run(store.EarliestCheckDue);
        await Eventually.Until(() => query.IsCompleted, "the index query answered");
        var refused = await Assert.ThrowsAsync<StoreUnavailableException>(() => query);
        Assert.Contains("journal write or fsync failed", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_failed_journal_write_or_fsync_fails_the_batch_and_every_later_one_and_keeps_the_journal(bool fsync)
    {
        var files = new FaultyJournalFiles();
        var failures = new List<Exception>();
        var kept = Half("tx-kept");
        var store = Open(new LiteDbMessageStore(_path, Durability.Fsync), TimeSpan.FromHours(1), files, failures.Add, Durability.Fsync);
        // With fsync the writer writes a batch, then its completer waits for the disk: both steps, as the writer does.
        void Commit(Action work)
        {
            store.RunBatch(work);
            store.MakeDurable(store.WrittenPosition);
        }
        Commit(() => store.Insert(kept));

        if (fsync) files.FailSyncs = true;
        else files.FailWrites = true;
        var writesBefore = files.Writes;
        Assert.Throws<StoreUnavailableException>(() => Commit(() => store.Insert(Half("tx-failed"))));
        var failure = Assert.Single(failures);
        Assert.IsType<JournalFailedException>(failure);
        Assert.NotNull(store.JournalFailure);

        // The file is fine again, but the journal is not retried on it: every later write is refused, before any I/O.
        files.FailSyncs = files.FailWrites = false;
        var written = files.Writes;
        Assert.Throws<StoreUnavailableException>(() => Commit(() => store.Insert(Half("tx-later"))));
        Assert.Equal(written, files.Writes);
        Assert.Single(failures);
        Assert.Equal(writesBefore + (fsync ? 1 : 0), files.Writes);

        // A clean close keeps the broken journal whole for the next start to judge.
        store.Dispose();
        Assert.NotEmpty(Directory.GetFiles(JournalPath, "journal-*.log"));
        using var reopened = Open(new LiteDbMessageStore(_path, Durability.Fsync), TimeSpan.FromHours(1));
        Assert.NotNull(reopened.Find(kept.Id));
        Assert.Null(reopened.FindByTransactionId("tx-later"));
    }
}
