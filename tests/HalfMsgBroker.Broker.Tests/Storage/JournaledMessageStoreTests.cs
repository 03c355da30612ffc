using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage;

[Trait("Storage", "LiteDb")]
public sealed class JournaledMessageStoreTests : IDisposable
{
    private static readonly TimeSpan Never = TimeSpan.FromHours(1);

    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-journal-tests", Guid.NewGuid().ToString("N"));
    private readonly List<Exception> _applyErrors = [];

    public void Dispose()
    {
        Assert.Empty(_applyErrors);
        BrokerFactory.TryDelete(_path);
    }

    private string JournalPath => Path.Combine(_path, "journal");

    private JournaledMessageStore Open(TimeSpan applyDelay, long segmentBytes = 64L << 20) => new(
        new LiteDbMessageStore(_path, Durability.Process),
        JournalPath,
        new StorageOptions { ApplyDelay = applyDelay, JournalSegmentBytes = segmentBytes },
        e => { lock (_applyErrors) _applyErrors.Add(e); });

    private static StoredMessage Half(string tx, long nextCheckAt = 100, int bodyBytes = 16) => new()
    {
        Id = Guid.CreateVersion7(),
        Topic = "orders",
        Body = System.Text.Encoding.UTF8.GetBytes("{\"p\":\"" + new string('x', bodyBytes) + "\"}"),
        TransactionId = tx,
        ProducerGroup = "order-service",
        State = MessageState.Prepared,
        BornAt = 1,
        NextCheckAt = nextCheckAt,
    };

    private static StoredMessage Plain(string topic, string idempotencyKey) => new()
    {
        Id = Guid.CreateVersion7(),
        Topic = topic,
        Body = "{}"u8.ToArray(),
        IdempotencyKey = idempotencyKey,
        State = MessageState.Committed,
        BornAt = 1,
    };

    [Fact]
    public void Changes_LiteDB_never_received_are_replayed_from_the_journal_after_a_crash()
    {
        var kept = Half("tx-kept");
        var committed = Half("tx-committed");
        var purged = Half("tx-purged");
        var store = Open(Never);
        store.RunBatch(() =>
        {
            store.Insert(kept);
            store.Insert(committed);
            store.Insert(purged);
            store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 3 });
            store.SaveProducerGroup(new ProducerGroup("order-service", "http://127.0.0.1:1/check", 2000));
            store.SaveSubscription(new Subscription("inventory", "orders", TagFilter.All, null, 5, ExhaustedAction.Discard, 7));
        });
        store.RunBatch(() =>
        {
            committed.State = MessageState.Committed;
            store.Update(committed);
            store.Delete(purged);
            store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = -1 });
        });
        Assert.True(store.UnappliedCount > 0);
        store.DisposeAsIfCrashed();

        // LiteDB alone has none of it: what follows comes from the journal.
        using (var db = new LiteDbMessageStore(_path, Durability.Process))
        {
            Assert.Null(db.Find(kept.Id));
            Assert.Null(db.GetProducerGroup("order-service"));
        }

        using var reopened = Open(Never);
        Assert.Equal(MessageState.Prepared, reopened.Find(kept.Id)?.State);
        Assert.Equal(MessageState.Committed, reopened.FindByTransactionId("tx-committed")?.State);
        Assert.Null(reopened.Find(purged.Id));
        Assert.Equal("http://127.0.0.1:1/check", reopened.GetProducerGroup("order-service")?.CheckUrl);
        Assert.Equal(ExhaustedAction.Discard, Assert.Single(reopened.Subscriptions()).OnExhausted);
        Assert.Equal(new TopicCount("orders", 2), Assert.Single(reopened.TopicCounts()));
        Assert.Equal(0, reopened.UnappliedCount);
    }

    [Fact]
    public void Reads_see_changes_LiteDB_does_not_hold_yet()
    {
        using var store = Open(Never);
        var message = Half("tx-read", nextCheckAt: 50);
        store.RunBatch(() => store.Insert(message));
        store.RunBatch(() =>
        {
            message.CheckCount = 1;
            store.Update(message);
            store.SaveProducerGroup(new ProducerGroup("order-service", null, 1500));
        });
        Assert.Equal(2, store.UnappliedCount);

        Assert.Equal(1, store.Find(message.Id)?.CheckCount);
        Assert.Equal(message.Id, store.FindByTransactionId("tx-read")?.Id);
        Assert.Equal(1500, store.GetProducerGroup("order-service")?.CheckTimeoutMs);
        Assert.Equal(2, store.UnappliedCount); // lookups by id or key need no apply

        // An index query first has LiteDB catch up with the journal.
        Assert.Equal(message.Id, Assert.Single(store.DueChecks(now: 60, limit: 10)).Id);
        Assert.Equal(0, store.UnappliedCount);
    }

    [Fact]
    public void A_transaction_id_or_idempotency_key_already_stored_is_refused_wherever_the_message_is()
    {
        var first = Half("tx-dup");
        using (var store = Open(Never))
        {
            store.RunBatch(() => store.Insert(first));
            // Journaled, not applied.
            AssertRefused(store, () => Half("tx-dup"));
            // In the same batch as the first holder.
            AssertRefused(store, () => Plain("orders", "key-1"), alsoInsertFirst: true);
            store.DuePurges(0, 1); // applies
            Assert.Equal(0, store.UnappliedCount);
            // In LiteDB.
            AssertRefused(store, () => Half("tx-dup"));
            store.RunBatch(() => store.Insert(Plain("orders", "key-2")));
            // Another topic may reuse an Idempotency-Key.
            store.RunBatch(() => store.Insert(Plain("payments", "key-2")));
        }

        using var reopened = Open(Never);
        // After a restart the known keys are looked up until their hashes are counted from the unique index (in the background), then counted.
        AssertRefused(reopened, () => Half("tx-dup"));
        SpinWait.SpinUntil(() => reopened.KeysCounted, TimeSpan.FromSeconds(30));
        Assert.True(reopened.KeysCounted, "the stored keys counted within 30 s");
        AssertRefused(reopened, () => Half("tx-dup"));
        AssertRefused(reopened, () => Plain("orders", "key-2"));

        // Once the holder is deleted (pending, then applied) the key is free again.
        reopened.RunBatch(() => reopened.Delete(first));
        var second = Half("tx-dup");
        reopened.RunBatch(() => reopened.Insert(second));
        reopened.DuePurges(0, 1);
        Assert.Equal(second.Id, reopened.FindByTransactionId("tx-dup")?.Id);
        Assert.Null(reopened.Find(first.Id));
    }

    [Fact]
    public void A_key_reused_and_deleted_again_before_an_apply_still_reads_as_deleted()
    {
        using var store = Open(Never);
        var first = Half("tx-reused");
        store.RunBatch(() => store.Insert(first));
        store.DuePurges(0, 1); // LiteDB holds the first holder
        var second = Half("tx-reused");
        store.RunBatch(() => store.Delete(first));
        store.RunBatch(() => store.Insert(second));
        store.RunBatch(() => store.Delete(second));

        // LiteDB still has the first holder until the apply: the lookup must not fall through to it.
        Assert.Null(store.FindByTransactionId("tx-reused"));
        store.DuePurges(0, 1);
        Assert.Null(store.FindByTransactionId("tx-reused"));
        Assert.Null(store.Find(first.Id));
        store.RunBatch(() => store.Insert(Half("tx-reused")));
    }

    [Fact]
    public void Index_queries_are_refused_inside_a_batch()
    {
        using var store = Open(Never);
        var e = Assert.Throws<InvalidOperationException>(() => store.RunBatch(() => store.DeadLetters("inventory", null, null, 10)));
        Assert.Contains("outside a batch", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Key_counts_stay_exact_through_deletes_and_reinserts_before_and_after_applies()
    {
        using var store = Open(Never);
        var a = Half("t1");
        store.RunBatch(() =>
        {
            store.Insert(a);
            store.Delete(a);
        });
        store.RunBatch(() => store.Insert(Half("t1")));
        Assert.Throws<DuplicateKeyException>(() => store.RunBatch(() => store.Insert(Half("t1"))));

        var b = Half("t2");
        store.RunBatch(() => store.Insert(b));
        store.RunBatch(() => store.Delete(b));
        var b2 = Half("t2");
        store.RunBatch(() => store.Insert(b2));
        Assert.Throws<DuplicateKeyException>(() => store.RunBatch(() => store.Insert(Half("t2"))));
        store.DuePurges(0, 1);
        Assert.Throws<DuplicateKeyException>(() => store.RunBatch(() => store.Insert(Half("t2"))));

        var b3 = Half("t2");
        store.RunBatch(() =>
        {
            store.Delete(b2);
            store.Insert(b3);
        });
        Assert.Throws<DuplicateKeyException>(() => store.RunBatch(() => store.Insert(Half("t2"))));
        store.DuePurges(0, 1);
        Assert.Equal(b3.Id, store.FindByTransactionId("t2")?.Id);
    }

    [Fact]
    public void Frames_of_several_megabytes_replay_whole()
    {
        var messages = Enumerable.Range(0, 50).Select(i => Half("tx-big-" + i, bodyBytes: 20_000 + i)).ToList();
        foreach (var m in messages) m.Deliveries.Add(new StoredDelivery { Group = "g", LastError = new string('e', 70_000) });
        var store = Open(Never);
        store.RunBatch(() =>
        {
            foreach (var m in messages) store.Insert(m);
        });
        store.RunBatch(() =>
        {
            foreach (var m in messages)
            {
                m.CheckCount = 7;
                store.Update(m);
            }
        });
        store.DisposeAsIfCrashed();

        using var reopened = Open(Never);
        foreach (var m in messages)
        {
            var found = reopened.Find(m.Id);
            Assert.NotNull(found);
            Assert.Equal(7, found.CheckCount);
            Assert.Equal(m.Body, found.Body);
            Assert.Equal(70_000, Assert.Single(found.Deliveries).LastError!.Length);
        }
    }

    [Fact]
    public void A_journal_that_holds_messages_as_BSON_documents_still_replays()
    {
        // The first journal format (kind 1): a message as the BSON document LiteDB stores.
        var message = Half("tx-bson");
        var bson = LiteDB.BsonSerializer.Serialize(MessageCodec.ToBson(message));
        var frame = new byte[Journal.HeaderBytes + 6 + bson.Length];
        frame[Journal.HeaderBytes] = 1;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(Journal.HeaderBytes + 2), (uint)bson.Length);
        bson.CopyTo(frame, Journal.HeaderBytes + 6);
        new LiteDbMessageStore(_path, Durability.Process).Dispose();
        using (var journal = Journal.Start(JournalPath, Durability.Process, 64L << 20, nextSeq: 1, JournalFiles.Real)) journal.Append(frame);

        using var store = Open(Never);
        Assert.Equal(message.Id, store.FindByTransactionId("tx-bson")?.Id);
    }

    [Fact]
    public async Task A_batch_in_flight_when_the_store_closes_is_applied_before_it_closes()
    {
        var store = Open(Never);
        var message = Half("tx-in-flight");
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var batch = Task.Run(() => store.RunBatch(() =>
        {
            // Hold the batch open until Dispose has begun, then write.
            entered.SetResult();
            Eventually.Until(() => store.Stopping, "Dispose begun").GetAwaiter().GetResult();
            store.Insert(message);
        }));
        await entered.Task;
        store.Dispose();
        await batch;

        Assert.Empty(Directory.GetFiles(JournalPath)); // applied, so nothing is left to replay
        using var db = new LiteDbMessageStore(_path, Durability.Process);
        Assert.Equal(message.Id, db.FindByTransactionId("tx-in-flight")?.Id);
    }

    [Fact]
    public async Task While_LiteDB_refuses_changes_commits_go_on_and_index_queries_answer_unavailable_then_all_is_applied()
    {
        using var store = Open(TimeSpan.FromMilliseconds(10));
        store.CatchUpTimeout = TimeSpan.FromMilliseconds(300);
        var failing = true;
        store.ApplyFault = after =>
        {
            if (!after && Volatile.Read(ref failing)) throw new IOException("disk full (test)");
        };
        var message = Half("tx-refused", nextCheckAt: 50);
        store.RunBatch(() => store.Insert(message)); // durable in the journal all the same

        await Eventually.Until(() => store.ApplyFailingFor > TimeSpan.Zero, "apply failing");
        Assert.Equal(message.Id, store.FindByTransactionId("tx-refused")?.Id);
        Assert.Throws<StoreUnavailableException>(() => store.DueChecks(now: 60, limit: 10));

        Volatile.Write(ref failing, false);
        await Eventually.Until(() => store.UnappliedCount == 0, "applied after the fault cleared");
        Assert.Equal(TimeSpan.Zero, store.ApplyFailingFor);
        Assert.Equal(message.Id, Assert.Single(store.DueChecks(now: 60, limit: 10)).Id);
        lock (_applyErrors)
        {
            Assert.All(_applyErrors, e => Assert.Equal("disk full (test)", e.Message));
            _applyErrors.Clear();
        }
    }

    [Fact]
    public async Task An_apply_that_fails_after_LiteDB_committed_it_is_not_applied_twice()
    {
        using var store = Open(TimeSpan.FromMilliseconds(10));
        var once = 1;
        store.ApplyFault = after =>
        {
            if (after && Interlocked.Exchange(ref once, 0) == 1) throw new IOException("checkpoint failed (test)");
        };
        var message = Half("tx-committed-then-failed");
        store.RunBatch(() =>
        {
            store.Insert(message);
            store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 1 });
        });

        await Eventually.Until(() => store.UnappliedCount == 0, "applied");
        Assert.Equal(message.Id, store.FindByTransactionId("tx-committed-then-failed")?.Id);
        Assert.Equal(new TopicCount("orders", 1), Assert.Single(store.TopicCounts())); // not counted twice
        lock (_applyErrors)
        {
            // One failure; a retry that inserted again would have failed on the duplicate id, and kept failing.
            Assert.Equal("checkpoint failed (test)", Assert.Single(_applyErrors).Message);
            _applyErrors.Clear();
        }
    }

    private static void AssertRefused(JournaledMessageStore store, Func<StoredMessage> duplicate, bool alsoInsertFirst = false)
    {
        var before = store.UnappliedCount;
        var holder = alsoInsertFirst ? duplicate() : null;
        var e = Assert.ThrowsAny<Exception>(() => store.RunBatch(() =>
        {
            if (holder is not null) store.Insert(holder);
            store.Insert(duplicate());
        }));
        Assert.True(LiteDbMessageStore.IsDuplicateKey(e), e.ToString());
        Assert.Equal(before, store.UnappliedCount); // the refused batch left nothing behind
        if (holder is not null) Assert.Null(store.Find(holder.Id));
    }

    [Fact]
    public void A_frame_cut_short_by_a_crash_ends_the_journal_and_the_frames_before_it_replay()
    {
        var message = Half("tx-torn");
        var store = Open(Never);
        store.RunBatch(() => store.Insert(message));
        store.DisposeAsIfCrashed();
        var segment = Assert.Single(Directory.GetFiles(JournalPath));
        using (var file = new FileStream(segment, FileMode.Append))
        {
            // The start of a frame whose payload never arrived: length 400, then nothing.
            file.Write([0x90, 0x01, 0, 0, 1, 2, 3, 4, 5]);
        }

        using (var reopened = Open(Never))
        {
            Assert.Equal(message.Id, reopened.FindByTransactionId("tx-torn")?.Id);
            reopened.RunBatch(() => reopened.Insert(Half("tx-after")));
            reopened.DisposeAsIfCrashed();
        }

        using var again = Open(Never);
        Assert.NotNull(again.FindByTransactionId("tx-torn"));
        Assert.NotNull(again.FindByTransactionId("tx-after"));
    }

    [Fact]
    public void A_rolled_back_batch_is_neither_visible_nor_journaled()
    {
        var store = Open(Never);
        var ghost = Half("tx-ghost");
        Assert.Throws<InvalidOperationException>(() => store.RunBatch(() =>
        {
            store.Insert(ghost);
            throw new InvalidOperationException("boom");
        }));
        Assert.Null(store.Find(ghost.Id));
        Assert.Null(store.FindByTransactionId("tx-ghost"));
        store.RunBatch(() => store.Insert(Half("tx-ghost"))); // the key was never taken
        store.DisposeAsIfCrashed();

        using var reopened = Open(Never);
        Assert.Null(reopened.Find(ghost.Id));
        Assert.NotNull(reopened.FindByTransactionId("tx-ghost"));
    }

    [Fact]
    public async Task Journal_files_are_deleted_once_LiteDB_holds_them()
    {
        using var store = Open(TimeSpan.FromMilliseconds(10), segmentBytes: 1 << 20);
        for (var i = 0; i < 40; i++)
        {
            store.RunBatch(() =>
            {
                for (var j = 0; j < 10; j++) store.Insert(Half($"tx-{i}-{j}", bodyBytes: 8_000));
            });
        }
        // 400 messages of 8 KB: at least three 1 MiB segments were written.
        await Eventually.Until(() => store.UnappliedCount == 0 && Directory.GetFiles(JournalPath).Length == 1, "applied segments deleted");
        Assert.Equal(400, store.DueChecks(now: 200, limit: 1000).Count);
    }

    [Fact]
    public void A_clean_shutdown_applies_everything_and_leaves_no_journal_to_replay()
    {
        var message = Half("tx-clean");
        using (var store = Open(Never)) store.RunBatch(() => store.Insert(message));
        Assert.Empty(Directory.GetFiles(JournalPath));
        using var db = new LiteDbMessageStore(_path, Durability.Process);
        Assert.Equal(message.Id, db.FindByTransactionId("tx-clean")?.Id);
    }

    [Fact]
    public void Stored_keys_are_read_back_from_the_unique_index_alone()
    {
        using var db = new LiteDbMessageStore(_path, Durability.Process);
        db.RunBatch(() => db.Insert(Half("tx-plan")));
        Assert.Contains("\"loader\":\"index\"", db.ExplainProducerChosenKeys().Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Equal(["x:tx-plan"], db.ProducerChosenKeys());
    }
}
