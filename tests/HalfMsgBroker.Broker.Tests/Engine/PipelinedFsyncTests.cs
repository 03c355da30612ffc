using System.Net;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Tests.Engine;

/// <summary>
/// In <c>Fsync</c> mode the writer writes the next group commit while the previous one is being synced;
/// nothing of a batch is answered before its fsync returns, and by default nothing is visible either
/// (with <c>VisibleBeforeFsync</c>, consumers see it once written).
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class PipelinedFsyncTests
{
    [Fact]
    public async Task A_batch_is_answered_and_visible_only_after_its_fsync_while_the_next_batch_is_written_meanwhile()
    {
        var files = new HeldSyncFiles();
        await using var broker = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Storage:Durability"] = "Fsync" });
        using var c = Client(broker, files);
        await c.Subscribe("inventory", "orders");

        files.Hold();
        var writes = files.Writes;
        var first = c.Post("/v1/topics/orders/messages", new { body = new { n = 1 } });
        await Eventually.Until(() => files.Writes > writes && files.SyncsWaiting > 0, "the first send's frame written and its fsync begun");
        var second = c.Post("/v1/topics/orders/messages", new { body = new { n = 2 } });
        // The writer is not stuck behind the fsync: the second frame reaches the file while the first is still syncing.
        await Eventually.Until(() => files.Writes > writes + 1, "the second send's frame written during the first fsync");

        Assert.False(first.IsCompleted, "a send was answered before its fsync returned");
        Assert.False(second.IsCompleted, "a send was answered before its fsync returned");
        Assert.Empty(await c.Receive("inventory", "orders"));

        files.Release();
        Assert.Equal(HttpStatusCode.Created, (await first).Status);
        Assert.Equal(HttpStatusCode.Created, (await second).Status);
        var received = await c.Receive("inventory", "orders");
        Assert.Equal(2, received.Count);
    }

    [Fact]
    public async Task With_VisibleBeforeFsync_a_commit_reaches_consumers_while_its_fsync_runs_and_is_answered_after_it()
    {
        var files = new HeldSyncFiles();
        await using var broker = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:Storage:Durability"] = "Fsync",
            ["Broker:Storage:VisibleBeforeFsync"] = "true",
        });
        using var c = Client(broker, files);
        await c.Subscribe("inventory", "orders");
        var id = await c.SendHalf("orders", "tx-early");

        files.Hold();
        var commit = c.Post("/v1/transactions/tx-early/commit");
        try
        {
            var received = await c.Receive("inventory", "orders", wait: 10);

            Assert.Equal(id, Assert.Single(received).Str("messageId"));
            // The writer publishes before it hands the frame to the syncing thread: the fsync may begin just after.
            await Eventually.Until(() => files.SyncsWaiting > 0, "the commit's fsync begun");
            Assert.False(commit.IsCompleted, "a commit was answered before its fsync returned");
        }
        finally
        {
            files.Release();
        }
        Assert.Equal(HttpStatusCode.OK, (await commit).Status);
    }

    [Fact]
    public async Task With_VisibleBeforeFsync_a_commit_a_power_cut_takes_back_is_checked_back_and_received_again()
    {
        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
        var path = Path.Combine(Path.GetTempPath(), "halfmsg-tests", Guid.NewGuid().ToString("N"));
        var settings = new Dictionary<string, string?>
        {
            ["Broker:DataPath"] = path,
            ["Broker:Storage:Durability"] = "Fsync",
            ["Broker:Storage:VisibleBeforeFsync"] = "true",
        };
        var files = new HeldSyncFiles();
        string id;
        try
        {
            await using (var broker = new BrokerFactory(settings))
            {
                using var c = Client(broker, files);
                var group = await c.Put("/v1/producer-groups/order-service", new { checkUrl = checker.Url });
                Assert.True(group.Status is HttpStatusCode.OK or HttpStatusCode.Created, group.ToString());
                await c.Subscribe("inventory", "orders");
                // Not checked before the power cut: the check-back that brings the commit back is the restarted broker's.
                id = await c.SendHalf("orders", "tx-lost", extra: new { checkImmunitySeconds = 3 });

                files.Hold();
                var commit = c.Post("/v1/transactions/tx-lost/commit");
                try
                {
                    Assert.Equal(id, Assert.Single(await c.Receive("inventory", "orders", wait: 10)).Str("messageId"));
                    await Eventually.Until(() => files.SyncsWaiting > 0, "the commit's fsync begun");
                }
                finally
                {
                    // The power goes off during the commit's fsync: it never returns, and nothing written after the last one survives.
                    files.Fail();
                }
                Assert.NotEqual(HttpStatusCode.OK, (await commit).Status);
            }
            files.PowerCut();
            Assert.Empty(checker.Requests);

            await using var restarted = new BrokerFactory(settings);
            using var again = restarted.CreateClient();
            again.DefaultRequestHeaders.Authorization = new("Bearer", BrokerFactory.AdminKey);
            var redelivered = await Eventually.Until(() => again.Receive("inventory", "orders", wait: 1), m => m.Count > 0, "the checked-back commit delivered again");
            Assert.Equal(id, Assert.Single(redelivered).Str("messageId"));
            Assert.Equal("tx-lost", Assert.Single(checker.Requests).Body.Str("transactionId"));
            Assert.Equal("check", (await again.Transaction("tx-lost")).Str("resolvedBy"));
        }
        finally
        {
            BrokerFactory.TryDelete(path);
        }
    }

    [Theory]
    [InlineData("Fsync", "VisibleBeforeFsync is on")]
    [InlineData("Process", "VisibleBeforeFsync has no effect here")]
    public async Task The_log_says_at_start_whether_VisibleBeforeFsync_takes_effect(string durability, string expected)
    {
        var log = new CapturingLoggerProvider();
        await using var broker = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:Storage:Durability"] = durability,
            ["Broker:Storage:VisibleBeforeFsync"] = "true",
            ["Logging:LogLevel:Default"] = "Information",
        });
        using var c = broker.WithWebHostBuilder(b => b.ConfigureServices(s => s.AddLogging(l => l.AddProvider(log)))).CreateClient();
        c.DefaultRequestHeaders.Authorization = new("Bearer", BrokerFactory.AdminKey);
        await c.Send("orders");

        Assert.Single(log.Lines, l => l.Contains(expected, StringComparison.Ordinal));
    }

    private static HttpClient Client(BrokerFactory broker, HeldSyncFiles files)
    {
        var c = broker.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<IJournalFiles>(files))).CreateClient();
        c.DefaultRequestHeaders.Authorization = new("Bearer", BrokerFactory.AdminKey);
        return c;
    }

    /// <summary>
    /// The real journal files, with fsyncs that wait while held, and that fail once the power is off: then
    /// <see cref="PowerCut"/> zeroes every write no completed fsync covered (the journal writes zeros ahead of
    /// its frames, so that is what the disk held there), as it would be after the power came back.
    /// </summary>
    private sealed class HeldSyncFiles : IJournalFiles
    {
        private readonly ManualResetEventSlim _open = new(initialState: true);
        private readonly Lock _lock = new();
        private readonly List<(string Path, long Offset, int Length, long Number)> _unsynced = [];
        private long _writeNumber;
        private volatile bool _powerOff;
        private int _writes;
        private int _syncsWaiting;

        public int Writes => Volatile.Read(ref _writes);
        public int SyncsWaiting => Volatile.Read(ref _syncsWaiting);

        public void Hold() => _open.Reset();

        public void Release() => _open.Set();

        /// <summary>Power off: the held fsync and every later one fail.</summary>
        public void Fail()
        {
            _powerOff = true;
            _open.Set();
        }

        public void PowerCut()
        {
            lock (_lock)
            {
                foreach (var (path, offset, length, _) in _unsynced)
                {
                    using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
                    file.Position = offset;
                    file.Write(new byte[length]);
                }
            }
        }

        public IJournalSegmentFile Create(string path) => new Segment(this, path, JournalFiles.Real.Create(path));

        public void Delete(string path) => JournalFiles.Real.Delete(path);

        public void SyncDirectory(string directory) => JournalFiles.Real.SyncDirectory(directory);

        private sealed class Segment(HeldSyncFiles owner, string path, IJournalSegmentFile real) : IJournalSegmentFile
        {
            public void Write(ReadOnlySpan<byte> data, long offset)
            {
                if (owner._powerOff) throw new IOException("The power is off (test).");
                real.Write(data, offset);
                lock (owner._lock) owner._unsynced.Add((path, offset, data.Length, ++owner._writeNumber));
                Interlocked.Increment(ref owner._writes);
            }

            public void Sync()
            {
                long covered;
                lock (owner._lock) covered = owner._writeNumber;
                Interlocked.Increment(ref owner._syncsWaiting);
                owner._open.Wait(TimeSpan.FromSeconds(30));
                Interlocked.Decrement(ref owner._syncsWaiting);
                if (owner._powerOff) throw new IOException("The power is off (test).");
                real.Sync();
                lock (owner._lock) owner._unsynced.RemoveAll(w => w.Path == path && w.Number <= covered);
            }

            public void Dispose() => real.Dispose();
        }
    }
}
