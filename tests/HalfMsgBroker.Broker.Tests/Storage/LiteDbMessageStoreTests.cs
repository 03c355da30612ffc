using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage;

[Trait("Storage", "LiteDb")]
public sealed class LiteDbMessageStoreTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-store-tests", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_path);

    private static StoredMessage Half(string tx, long nextCheckAt, params string[] keys) => new()
    {
        Id = Guid.CreateVersion7(),
        Topic = "orders",
        Body = """{"orderId":1}"""u8.ToArray(),
        Keys = keys,
        Properties = new() { ["source"] = "web" },
        TransactionId = tx,
        ProducerGroup = "order-service",
        State = MessageState.Prepared,
        BornAt = 1,
        NextCheckAt = nextCheckAt,
    };

    /// <summary>The applier's LiteDB work gives way to the request path document by document (<see cref="ApplierYield"/>).</summary>
    [Fact]
    public void Applying_a_batch_gives_the_core_away_between_documents_and_stores_them_all()
    {
        const int count = 40;
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        long now = 0;
        // Every document takes a whole quantum here, so each one is followed by a yield.
        store.ApplyYield = new ApplierYield(() => now += 10, () => true, quantumTicks: 10);
        var changes = new ChangeSet { LastSeq = 1 };
        var messages = Enumerable.Range(0, count).Select(i => Half($"tx-{i}", 100)).ToList();
        foreach (var m in messages) changes.PutMessage(m, inserted: true, MessageCodec.TransactionKey(m.TransactionId!));

        store.Apply(changes);

        // With a quantum per step, one yield per step: after building each document, after each message looked at
        // for a delete, and before storing each document.
        Assert.Equal(3 * count, store.ApplyYield.Yields);
        Assert.All(messages, m => Assert.Equal(m.TransactionId, store.Find(m.Id)?.TransactionId));
    }

    [Fact]
    public void Messages_round_trip_through_a_real_file_and_survive_reopening()
    {
        var message = Half("tx-1", 500, "order-1", "customer-7");
        message.Deliveries.Add(new StoredDelivery { Group = "inv", State = DeliveryState.Retrying, Attempts = 2, LastError = "http 503", NextAttemptAt = 9 });
        using (var store = new LiteDbMessageStore(_path, Durability.Fsync))
        {
            store.RunBatch(() => store.Insert(message));
        }

        using var reopened = new LiteDbMessageStore(_path, Durability.Process);
        var found = reopened.FindByTransactionId("tx-1");
        Assert.NotNull(found);
        Assert.Equal(message.Id, found.Id);
        Assert.Equal(message.Body, found.Body);
        Assert.Equal(["order-1", "customer-7"], found.Keys);
        Assert.Equal("web", found.Properties!["source"]);
        var d = Assert.Single(found.Deliveries);
        Assert.Equal((DeliveryState.Retrying, 2, "http 503", 9L), (d.State, d.Attempts, d.LastError, d.NextAttemptAt));
        Assert.Equal(message.Id, Assert.Single(reopened.FindByKey("customer-7", null, null, 10).Items).Id);
    }

    [Fact]
    public void Keys_that_differ_only_in_case_are_different_keys()
    {
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        var upper = Half("Order-1", 500, "Key-A");
        var lower = Half("order-1", 500, "key-a");
        store.RunBatch(() =>
        {
            store.Insert(upper);
            store.Insert(lower);
        });

        Assert.Equal(upper.Id, store.FindByTransactionId("Order-1")!.Id);
        Assert.Equal(lower.Id, store.FindByTransactionId("order-1")!.Id);
        Assert.Null(store.FindByTransactionId("ORDER-1"));
        Assert.Equal(upper.Id, Assert.Single(store.FindByKey("Key-A", null, null, 10).Items).Id);
    }

    [Fact]
    public void Names_that_differ_only_in_case_are_different_groups_and_subscriptions_after_reopening()
    {
        using (var store = new LiteDbMessageStore(_path, Durability.Process))
        {
            store.RunBatch(() =>
            {
                store.SaveProducerGroup(new ProducerGroup("Orders", "http://a/check", 3000));
                store.SaveProducerGroup(new ProducerGroup("orders", "http://b/check", 3000));
                store.SaveSubscription(new Subscription("Stock", "orders", TagFilter.All, null, 5, ExhaustedAction.Discard, 7));
                store.SaveSubscription(new Subscription("stock", "orders", TagFilter.All, null, 9, ExhaustedAction.Discard, 7));
            });
        }

        using var reopened = new LiteDbMessageStore(_path, Durability.Process);
        Assert.Equal("http://a/check", reopened.GetProducerGroup("Orders")!.CheckUrl);
        Assert.Equal("http://b/check", reopened.GetProducerGroup("orders")!.CheckUrl);
        Assert.Equal([("Stock", 5), ("stock", 9)], reopened.Subscriptions().Select(x => (x.Group, x.MaxAttempts)).Order().ToArray());
    }

    [Fact]
    public void A_file_made_with_LiteDBs_case_insensitive_default_collation_is_rebuilt_once_and_keeps_its_messages()
    {
        var old = Half("Order-1", 500, "order-1");
        Directory.CreateDirectory(_path);
        var file = Path.Combine(_path, "broker.db");
        // What LiteDB's default collation gives here: the current (invariant) culture, ignoring case.
        var ignoreCase = new LiteDB.Collation(System.Globalization.CultureInfo.InvariantCulture.LCID, System.Globalization.CompareOptions.IgnoreCase);
        using (var db = new LiteDB.LiteDatabase(new LiteDB.ConnectionString { Filename = file, Collation = ignoreCase }))
        {
            var messages = db.GetCollection("messages", LiteDB.BsonAutoId.Guid);
            messages.EnsureIndex(MessageCodec.UniqueField, "$." + MessageCodec.UniqueField, unique: true);
            messages.Insert(MessageCodec.ToBson(old));
        }

        var notices = new List<string>();
        using (var store = new LiteDbMessageStore(_path, Durability.Process, notice: notices.Add))
        {
            notices.RemoveAll(n => n.Contains("queue entries", StringComparison.Ordinal)); // StoredMessageMigrations, tested on their own
            notices.RemoveAll(n => n.Contains("commit-time index", StringComparison.Ordinal)); // StoredMessageMigrations, tested on their own
            Assert.Equal(2, notices.Count); // before (it may take minutes) and after
            Assert.Contains("IgnoreCase", notices[0], StringComparison.Ordinal);
            Assert.StartsWith("Rebuilt", notices[1], StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(_path, "broker-backup.db")));
            Assert.Equal(old.Id, store.FindByTransactionId("Order-1")!.Id);
            var caseVariant = Half("order-1", 500);
            store.RunBatch(() => store.Insert(caseVariant)); // the old unique index refused this one
            Assert.Equal(caseVariant.Id, store.FindByTransactionId("order-1")!.Id);
        }

        notices.Clear();
        using var reopened = new LiteDbMessageStore(_path, Durability.Process, notice: notices.Add);
        Assert.Empty(notices);
        Assert.Equal(old.Id, reopened.FindByTransactionId("Order-1")!.Id);
        Assert.Equal(old.Id, Assert.Single(reopened.FindByKey("order-1", null, null, 10).Items).Id);
    }

    [Fact]
    public void A_rebuild_interrupted_between_its_renames_stops_the_broker_instead_of_starting_empty()
    {
        Directory.CreateDirectory(_path);
        // LiteDB's rebuild renames broker.db to broker-backup.db, then broker-temp.db to broker.db; a crash
        // between the two leaves this.
        using (var db = new LiteDB.LiteDatabase(Path.Combine(_path, "broker-backup.db")))
        {
            db.GetCollection("messages").Insert(new LiteDB.BsonDocument { ["n"] = 1 });
        }

        var refused = Assert.Throws<InvalidOperationException>(() => new LiteDbMessageStore(_path, Durability.Process));
        Assert.Contains("broker-backup.db", refused.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_path, "broker.db")));
        using var afterwards = new LiteDbMessageStore(Path.Combine(_path, "elsewhere"), Durability.Process);
    }

    [Fact]
    public void An_empty_data_file_is_created_anew_with_the_ordinal_collation()
    {
        Directory.CreateDirectory(_path);
        File.WriteAllBytes(Path.Combine(_path, "broker.db"), []);
        var notices = new List<string>();
        using var store = new LiteDbMessageStore(_path, Durability.Process, notice: notices.Add);
        Assert.Empty(notices);
        store.RunBatch(() =>
        {
            store.Insert(Half("Order-1", 500));
            store.Insert(Half("order-1", 500));
        });
        Assert.NotEqual(store.FindByTransactionId("Order-1")!.Id, store.FindByTransactionId("order-1")!.Id);
    }

    [Fact]
    public void Due_checks_come_from_an_index_range_earliest_first()
    {
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        var late = Half("late", 900);
        var early = Half("early", 100);
        var notDue = Half("future", 5_000);
        var committed = Half("done", 50);
        committed.State = MessageState.Committed;
        committed.NextCheckAt = 0;
        store.RunBatch(() =>
        {
            foreach (var m in new[] { late, early, notDue, committed }) store.Insert(m);
        });

        Assert.Equal(["early", "late"], store.DueChecks(1_000, 10).Select(m => m.TransactionId));
        Assert.Equal(100, store.EarliestCheckDue());
        Assert.Contains("INDEX", store.ExplainDueChecks(1_000).ToUpperInvariant(), StringComparison.Ordinal);
        Assert.Contains("\"q\"", store.ExplainDueChecks(1_000), StringComparison.Ordinal);

        // Latest due first walks the same index backwards, with no sort of the range.
        Assert.Equal(["late", "early"], store.DueChecks(1_000, 10, latestFirst: true).Select(m => m.TransactionId));
        Assert.Equal(["late"], store.DueChecks(1_000, 1, latestFirst: true).Select(m => m.TransactionId));
        var latest = store.ExplainLatestDueChecks(1_000);
        Assert.Contains("\"q\"", latest, StringComparison.Ordinal);
        Assert.DoesNotContain("FULL", latest.ToUpperInvariant(), StringComparison.Ordinal);
        Assert.Contains("\"order\":-1", latest, StringComparison.Ordinal);
        Assert.DoesNotContain("orderBy", latest, StringComparison.Ordinal);
    }

    [Fact]
    public void Lookups_use_indexes_not_scans()
    {
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        store.RunBatch(() => store.Insert(Half("tx-9", 1, "order-9")));
        var unique = store.ExplainUnique("x:tx-9");
        Assert.Contains("\"u\"", unique, StringComparison.Ordinal);
        Assert.DoesNotContain("FULL", unique.ToUpperInvariant(), StringComparison.Ordinal);
        var byKey = store.ExplainFindByKey("order-9");
        Assert.Contains("\"lk\"", byKey, StringComparison.Ordinal);
        Assert.DoesNotContain("FULL", byKey.ToUpperInvariant(), StringComparison.Ordinal);
        Assert.Equal("tx-9", store.FindByTransactionId("tx-9")!.TransactionId);
    }

    [Fact]
    public void The_unique_index_refuses_a_second_message_with_the_same_transaction_id_and_rolls_the_batch_back()
    {
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        store.RunBatch(() => store.Insert(Half("tx-dup", 1)));
        var innocent = Half("tx-innocent", 1);
        var e = Assert.ThrowsAny<Exception>(() => store.RunBatch(() =>
        {
            store.Insert(innocent);
            store.Insert(Half("tx-dup", 1));
        }));
        Assert.True(LiteDbMessageStore.IsDuplicateKey(e), e.ToString());
        Assert.Null(store.FindByTransactionId("tx-innocent"));
        store.RunBatch(() => store.Insert(innocent));
        Assert.NotNull(store.FindByTransactionId("tx-innocent"));
    }

    [Fact]
    public void A_failed_batch_leaves_nothing_behind()
    {
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        Assert.Throws<InvalidOperationException>(() => store.RunBatch(() =>
        {
            store.Insert(Half("rolled-back-batch", 1));
            throw new InvalidOperationException("boom");
        }));
        Assert.Null(store.FindByTransactionId("rolled-back-batch"));
    }

    [Fact]
    public void Purges_and_open_messages_have_their_own_ranges()
    {
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        var finished = Half("finished", 0);
        finished.State = MessageState.RolledBack;
        finished.PurgeAt = 300;
        var open = Half("open", 0);
        open.State = MessageState.Committed;
        open.Deliveries.Add(new StoredDelivery { Group = "inv" });
        store.RunBatch(() =>
        {
            store.Insert(finished);
            store.Insert(open);
        });

        Assert.Empty(store.DuePurges(299, 10));
        Assert.Equal([finished.Id], store.DuePurges(300, 10));
        Assert.Equal([open.Id], store.OpenMessages().Select(m => m.Id));
        Assert.Empty(store.DueChecks(long.MaxValue / 1000, 10));
    }

    [Fact]
    public void Topic_counts_not_yet_stored_are_recounted_after_a_crash_and_purges_are_never_lost()
    {
        var first = Half("count-1", 1);
        var store = new LiteDbMessageStore(_path, Durability.Process);
        store.RunBatch(() =>
        {
            store.Insert(first);
            store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 1 });
        });
        // Within a second of the last save: these counts live only in memory when the process dies.
        store.RunBatch(() =>
        {
            store.Insert(Half("count-2", 1));
            store.Insert(Half("count-3", 1));
            store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 2 });
        });
        Assert.Equal(3, Assert.Single(store.TopicCounts()).MessageCount);
        store.DisposeAsIfCrashed();

        store = new LiteDbMessageStore(_path, Durability.Process);
        Assert.Equal(new TopicCount("orders", 3), Assert.Single(store.TopicCounts()));
        store.RunBatch(() =>
        {
            store.Insert(Half("count-4", 1));
            store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 1 });
        });
        // Within the second again: a purge next to an insert nets 0 for the topic, yet the delete must
        // be stored with its batch (the id range above the watermark can recount inserts, not deletes).
        store.RunBatch(() =>
        {
            store.Delete(first);
            store.Insert(Half("count-5", 1));
            store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 0 });
        });
        store.DisposeAsIfCrashed();

        using var reopened = new LiteDbMessageStore(_path, Durability.Process);
        Assert.Equal(new TopicCount("orders", 4), Assert.Single(reopened.TopicCounts()));
    }

    [Fact]
    public void Topic_counts_of_a_rolled_back_batch_are_not_kept()
    {
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        Assert.Throws<InvalidOperationException>(() => store.RunBatch(() =>
        {
            store.Insert(Half("never", 1));
            store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 1 });
            throw new InvalidOperationException("boom");
        }));
        Assert.Empty(store.TopicCounts());
    }

    [Fact]
    public void A_second_store_on_the_same_data_folder_is_refused_until_the_first_closes()
    {
        var first = new LiteDbMessageStore(_path, Durability.Process);
        var e = Assert.Throws<IOException>(() => new LiteDbMessageStore(_path, Durability.Process));
        Assert.Contains("Another broker process is using the data folder", e.Message, StringComparison.Ordinal);
        first.Dispose();
        using var second = new LiteDbMessageStore(_path, Durability.Process);
        Assert.Empty(second.Subscriptions());
    }

    [Fact]
    public void The_receipt_key_is_made_once_per_data_file()
    {
        byte[] first;
        using (var store = new LiteDbMessageStore(_path, Durability.Process)) first = store.ReceiptKey();
        using var again = new LiteDbMessageStore(_path, Durability.Process);
        Assert.Equal(first, again.ReceiptKey());
        Assert.Equal(32, first.Length);
    }
}
