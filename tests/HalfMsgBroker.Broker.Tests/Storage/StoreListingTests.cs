using HalfMsgBroker.Api;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>
/// Listings and counts page inside the store, on a real LiteDB file behind the journal. The journal
/// applies only when an index query asks it to (ApplyDelay of an hour), so each test decides which
/// messages LiteDB holds and which are still only journaled when a page is read.
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class StoreListingTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-listing-tests", Guid.NewGuid().ToString("N"));
    private readonly MessageIds _ids = new();
    private readonly List<Exception> _applyErrors = [];
    private long _clock = 1_000;

    public void Dispose()
    {
        Assert.Empty(_applyErrors);
        BrokerFactory.TryDelete(_path);
    }

    private JournaledMessageStore Open() => new(
        new LiteDbMessageStore(_path, Durability.Process),
        Path.Combine(_path, "journal"),
        new StorageOptions { ApplyDelay = TimeSpan.FromHours(1) },
        e => { lock (_applyErrors) _applyErrors.Add(e); });

    /// <summary>Ids in creation order, as the writer makes them.</summary>
    private StoredMessage Message(string topic, string[]? keys = null, string? tx = null, MessageState state = MessageState.Committed,
        string producerGroup = "pg-a", long nextCheckAt = 0) => new()
    {
        Id = _ids.Next(_clock++),
        Topic = topic,
        Keys = keys ?? [],
        Body = "{}"u8.ToArray(),
        TransactionId = tx,
        ProducerGroup = tx is null ? null : producerGroup,
        State = state,
        BornAt = 1,
        NextCheckAt = nextCheckAt,
    };

    /// <summary>What the writer does when a delivery is exhausted into a dead letter.</summary>
    private static void DeadLetter(IMessageStore store, StoredMessage m, string group, long at, bool indexed = true)
    {
        var d = m.DeliveryFor(group) ?? new StoredDelivery { Group = group };
        if (!m.Deliveries.Contains(d)) m.Deliveries.Add(d);
        d.State = DeliveryState.DeadLettered;
        d.DeadLetteredAt = at;
        store.Update(m);
        if (indexed) store.PutDeadLetter(new DeadLetterRef(group, m.Topic, m.Id), at);
    }

    private static void Redrive(IMessageStore store, StoredMessage m, string group, bool indexed = true)
    {
        Assert.True(DeliveryLifecycle.Redrive(m.DeliveryFor(group)!));
        store.Update(m);
        if (indexed) store.DeleteDeadLetter(new DeadLetterRef(group, m.Topic, m.Id));
    }

    private static Guid[] Ids(StorePage<StoredMessage> page) => page.Items.Select(m => m.Id).ToArray();

    [Fact]
    public void Key_lookups_page_in_id_order_across_what_LiteDB_holds_and_what_is_only_journaled()
    {
        using var store = Open();
        var first = new[] { Message("orders", ["order-7"]), Message("refunds", ["order-7", "x"]), Message("orders", ["order-7"]) };
        var first0 = first[0];
        store.RunBatch(() =>
        {
            foreach (var m in first) store.Insert(m);
            // Keys a separator or a prefix would confuse with order-7: none of them may show up.
            store.Insert(Message("orders", ["order-70"]));
            store.Insert(Message("orders", ["order-7\n" + first0.Id.ToString("N")]));
            store.Insert(Message("orders", ["order-7" + first0.Id.ToString("N")]));
            store.Insert(Message("orders", ["Order-7"]));
        });

        var page1 = store.FindByKey("order-7", null, null, 2);
        Assert.Equal([first[0].Id, first[1].Id], Ids(page1));
        Assert.Equal(first[1].Id, page1.Next);
        Assert.Equal(0, store.UnappliedCount);

        var second = new[] { Message("refunds", ["order-7"]), Message("orders", ["order-7"]) };
        store.RunBatch(() =>
        {
            foreach (var m in second) store.Insert(m);
        });
        Assert.True(store.UnappliedCount > 0);

        var page2 = store.FindByKey("order-7", null, page1.Next, 2);
        Assert.Equal([first[2].Id, second[0].Id], Ids(page2));
        var page3 = store.FindByKey("order-7", null, page2.Next, 2);
        Assert.Equal([second[1].Id], Ids(page3));
        Assert.Null(page3.Next);

        var refunds = store.FindByKey("order-7", "refunds", null, 1);
        Assert.Equal([first[1].Id], Ids(refunds));
        Assert.Equal([second[0].Id], Ids(store.FindByKey("order-7", "refunds", refunds.Next, 1)));
        Assert.Null(store.FindByKey("order-7", "refunds", refunds.Next, 1).Next);
        Assert.Empty(store.FindByKey("order-7", "payments", null, 10).Items);
    }

    [Fact]
    public void A_key_lookup_walks_the_key_index_with_or_without_a_topic()
    {
        using var db = new LiteDbMessageStore(_path, Durability.Process);
        foreach (var topic in new string?[] { null, "orders" })
        {
            var plan = db.ExplainFindByKey("order-9", topic);
            Assert.Contains("\"lk\"", plan, StringComparison.Ordinal);
            Assert.Contains("INDEX RANGE SCAN", plan, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Dead_letters_page_and_count_on_their_own_index_across_what_LiteDB_holds_and_what_is_only_journaled()
    {
        using var store = Open();
        var (m1, m2, m3) = (Message("t1"), Message("t2"), Message("t1"));
        store.RunBatch(() =>
        {
            foreach (var m in new[] { m1, m2, m3 }) store.Insert(m);
            DeadLetter(store, m1, "inv", at: 10);
            DeadLetter(store, m2, "inv", at: 20);
            DeadLetter(store, m2, "audit", at: 15);
            DeadLetter(store, m3, "inv", at: 30);
        });

        var page1 = store.DeadLetters("inv", null, null, 2);
        Assert.Equal([m1.Id, m2.Id], Ids(page1));
        Assert.Equal(m2.Id, page1.Next);
        Assert.Equal(0, store.UnappliedCount);

        var m4 = Message("t1");
        store.RunBatch(() =>
        {
            store.Insert(m4);
            DeadLetter(store, m4, "inv", at: 40);
            Redrive(store, m1, "inv");
        });
        Assert.True(store.UnappliedCount > 0);

        var page2 = store.DeadLetters("inv", null, page1.Next, 2);
        Assert.Equal([m3.Id, m4.Id], Ids(page2));
        Assert.Null(page2.Next);
        Assert.Equal([m2.Id, m3.Id, m4.Id], store.DeadLetterIds("inv", null, null, 10).Items);
        Assert.Equal([m3.Id, m4.Id], Ids(store.DeadLetters("inv", "t1", null, 10)));
        var t1Ids = store.DeadLetterIds("inv", "t1", null, 1);
        Assert.Equal([m3.Id], t1Ids.Items);
        Assert.Equal(m3.Id, t1Ids.Next);
        Assert.Equal([m4.Id], store.DeadLetterIds("inv", "t1", t1Ids.Next, 1).Items);
        Assert.Equal([m2.Id], Ids(store.DeadLetters("audit", null, null, 10)));

        Assert.Equal(2, store.CountDeadLetters("inv", "t1"));
        Assert.Equal(1, store.CountDeadLetters("inv", "t2"));
        Assert.Equal(1, store.CountDeadLetters("audit", "t2"));
        Assert.Equal(0, store.CountDeadLetters("audit", "t1"));
        Assert.Equal(0, store.CountDeadLetters("in", "v\nt1"));

        // Earliest first; the redriven one is gone.
        Assert.Equal(
            [new DeadLetterRef("audit", "t2", m2.Id), new DeadLetterRef("inv", "t2", m2.Id), new DeadLetterRef("inv", "t1", m3.Id)],
            store.ExpiredDeadLetters(deadLetteredBefore: 31, limit: 10));
        Assert.Equal(2, store.ExpiredDeadLetters(deadLetteredBefore: 31, limit: 2).Count);
        Assert.Empty(store.ExpiredDeadLetters(deadLetteredBefore: 15, limit: 10));
    }

    [Fact]
    public void Dead_letter_pages_and_counts_read_the_index_alone()
    {
        using var db = new LiteDbMessageStore(_path, Durability.Process);
        foreach (var plan in new[] { db.ExplainDeadLetterIds("inv", null), db.ExplainDeadLetterIds("inv", "t1"), db.ExplainCountDeadLetters("inv", "t1") })
        {
            Assert.Contains("INDEX RANGE SCAN", plan, StringComparison.Ordinal);
            Assert.Contains("\"loader\":\"index\"", plan.Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_page_leaves_out_an_entry_whose_message_moved_on_but_keeps_its_place()
    {
        using var store = Open();
        var (stale, kept) = (Message("t1"), Message("t1"));
        store.RunBatch(() =>
        {
            store.Insert(stale);
            store.Insert(kept);
            DeadLetter(store, kept, "inv", at: 5);
            // As if the walk read the entry just before a redrive of its message was applied.
            store.PutDeadLetter(new DeadLetterRef("inv", "t1", stale.Id), 5);
        });

        var page = store.DeadLetters("inv", null, null, 1);
        Assert.Empty(page.Items);
        Assert.Equal(stale.Id, page.Next);
        Assert.Equal([kept.Id], Ids(store.DeadLetters("inv", null, page.Next, 1)));
    }

    [Fact]
    public void A_journal_from_before_the_dead_letter_index_is_replayed_into_it()
    {
        var (redriven, deadLetter) = (Message("t1"), Message("t1"));
        var store = Open();
        store.RunBatch(() =>
        {
            store.Insert(redriven);
            DeadLetter(store, redriven, "inv", at: 5);
        });
        Assert.Equal([redriven.Id], Ids(store.DeadLetters("inv", null, null, 10)));
        // An older broker journaled message changes only; it crashed before LiteDB received them.
        store.RunBatch(() =>
        {
            Redrive(store, redriven, "inv", indexed: false);
            store.Insert(deadLetter);
            DeadLetter(store, deadLetter, "inv", at: 6, indexed: false);
        });
        store.DisposeAsIfCrashed();

        using var reopened = Open();
        Assert.Equal([deadLetter.Id], Ids(reopened.DeadLetters("inv", null, null, 10)));
        Assert.Equal(1, reopened.CountDeadLetters("inv", "t1"));
    }

    [Fact]
    public void Messages_stored_with_the_old_lookup_entries_are_rewritten_once()
    {
        var keyed = Message("t1", ["order-1"]);
        var dead = Message("t1", ["order-1"]);
        dead.Deliveries.Add(new StoredDelivery { Group = "inv", State = DeliveryState.DeadLettered, DeadLetteredAt = 7 });
        var plain = Message("t1");
        Directory.CreateDirectory(_path);
        using (var db = new LiteDB.LiteDatabase(new LiteDB.ConnectionString { Filename = Path.Combine(_path, "broker.db"), Collation = CollationMigration.Ordinal }))
        {
            var messages = db.GetCollection("messages", LiteDB.BsonAutoId.Guid);
            messages.EnsureIndex(MessageCodec.LookupField, "$." + MessageCodec.LookupField + "[*]");
            foreach (var (m, lookups) in new (StoredMessage, string[])[] { (keyed, ["k:order-1"]), (dead, ["k:order-1", "d:inv"]), (plain, []) })
            {
                var doc = MessageCodec.ToBson(m);
                doc.Remove(MessageCodec.LookupField);
                if (lookups.Length > 0) doc[MessageCodec.LookupField] = new LiteDB.BsonArray(lookups.Select(k => new LiteDB.BsonValue(k)));
                messages.Insert(doc);
            }
        }

        var notices = new List<string>();
        using (var store = new LiteDbMessageStore(_path, Durability.Process, notice: notices.Add))
        {
            notices.RemoveAll(n => n.Contains("queue entries", StringComparison.Ordinal)); // StoredMessageMigrations, tested on their own
            notices.RemoveAll(n => n.Contains("commit-time index", StringComparison.Ordinal)); // StoredMessageMigrations, tested on their own
            Assert.Equal(2, notices.Count);
            Assert.StartsWith("Rewrote the lookup entries of 2 messages", notices[1], StringComparison.Ordinal);
            Assert.Equal([keyed.Id, dead.Id], Ids(store.FindByKey("order-1", null, null, 10)));
            Assert.Equal([dead.Id], Ids(store.DeadLetters("inv", null, null, 10)));
            Assert.Equal(1, store.CountDeadLetters("inv", "t1"));
            Assert.Equal([new DeadLetterRef("inv", "t1", dead.Id)], store.ExpiredDeadLetters(8, 10));
        }

        notices.Clear();
        using var reopened = new LiteDbMessageStore(_path, Durability.Process, notice: notices.Add);
        Assert.Empty(notices);
        Assert.Equal(2, reopened.FindByKey("order-1", null, null, 10).Items.Count);
    }

    [Fact]
    public void Transactions_walk_in_id_order_stop_at_the_limit_and_filter_in_the_query()
    {
        using var store = Open();
        // Check times run against id order: the prepared listing must still come out in id order.
        var p1 = Message("t1", tx: "p1", state: MessageState.Prepared, nextCheckAt: 900);
        var plain = Message("t1");
        var c1 = Message("t1", tx: "c1");
        c1.FiledCheckAt = 50; // committed, as a journal written before 2026-11-30 carries it: filed as open all the same
        c1.Deliveries.Add(new StoredDelivery { Group = "inv" });
        var p2 = Message("t1", tx: "p2", state: MessageState.Prepared, producerGroup: "pg-b", nextCheckAt: 800);
        var r1 = Message("t2", tx: "r1", state: MessageState.RolledBack);
        var p3 = Message("t2", tx: "p3", state: MessageState.Prepared, nextCheckAt: 700);
        store.RunBatch(() =>
        {
            foreach (var m in new[] { p1, plain, c1, p2, r1, p3 }) store.Insert(m);
        });
        IReadOnlyList<Guid> List(MessageState? state, string? group = null, string? topic = null, Guid? after = null, int limit = 10) =>
            store.Transactions(state, group, topic, after, limit, _ => true).Select(m => m.Id).ToList();

        Assert.Equal([p1.Id, p2.Id, p3.Id], List(MessageState.Prepared));
        Assert.Equal([p1.Id, p3.Id], List(MessageState.Prepared, group: "pg-a"));
        Assert.Equal([p3.Id], List(MessageState.Prepared, group: "pg-a", topic: "t2"));
        Assert.Equal([p1.Id, p2.Id], List(MessageState.Prepared, limit: 2));
        Assert.Equal([p3.Id], List(MessageState.Prepared, after: p2.Id, limit: 2));
        Assert.Equal([p1.Id, c1.Id, p2.Id, r1.Id, p3.Id], List(null));
        Assert.Equal([c1.Id], List(MessageState.Committed));
        Assert.Equal([r1.Id], List(MessageState.RolledBack, group: "pg-a", topic: "t2"));
        Assert.Equal([p2.Id, r1.Id], List(null, after: c1.Id, limit: 2));
        Assert.Empty(List(MessageState.Prepared, group: "pg-c"));

        // The walk stops at the limit: the caller's filter sees only what it takes.
        var seen = 0;
        Assert.Equal(2, store.Transactions(null, null, null, null, 2, _ => ++seen > 0).Count);
        Assert.Equal(2, seen);
        // And it sees only what the query let through (producer group and state are checked by LiteDB first).
        var seenPrepared = new List<string?>();
        store.Transactions(MessageState.Prepared, "pg-a", null, null, 10, m => { seenPrepared.Add(m.TransactionId); return true; });
        Assert.Equal(["p1", "p3"], seenPrepared.Order(StringComparer.Ordinal));

        // Journaled only, after the cursor of a page LiteDB answered.
        var p4 = Message("t1", tx: "p4", state: MessageState.Prepared, nextCheckAt: 10);
        store.RunBatch(() => store.Insert(p4));
        Assert.True(store.UnappliedCount > 0);
        Assert.Equal([p4.Id], List(MessageState.Prepared, after: p3.Id));
        Assert.Equal([p4.Id], List(null, after: p3.Id));
    }

    [Fact]
    public void Transaction_listings_walk_an_index_not_the_whole_collection()
    {
        using var db = new LiteDbMessageStore(_path, Durability.Process);
        // A range of the id index from the cursor on (LiteDB prints a seek to "> cursor" as INDEX SCAN).
        Assert.Contains("INDEX SCAN(_id >", db.ExplainTransactions(MessageState.Committed, "pg-a", Guid.CreateVersion7()), StringComparison.Ordinal);
        Assert.Contains("INDEX RANGE SCAN(q", db.ExplainTransactions(MessageState.Prepared, "pg-a", null), StringComparison.Ordinal);
        // Without a cursor the id index is walked from its start, in order, until the page is full.
        Assert.Contains("\"name\":\"_id\"", db.ExplainTransactions(null, null, null).Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Walking_every_dead_letter_in_pages_reaches_them_all_while_each_page_removes_its_own()
    {
        using var store = Open();
        var messages = Enumerable.Range(0, 7).Select(_ => Message("t1")).ToList();
        store.RunBatch(() =>
        {
            foreach (var m in messages)
            {
                store.Insert(m);
                DeadLetter(store, m, "inv", at: 1);
            }
        });

        var pages = new List<IReadOnlyList<Guid>>();
        var total = await DeadLetterPages.ForEachAsync(store, "inv", "t1", page =>
        {
            pages.Add(page);
            // What a redrive does to each: the entry leaves the index while the walk goes on.
            store.RunBatch(() =>
            {
                foreach (var id in page) Redrive(store, messages.Single(m => m.Id == id), "inv");
            });
            return Task.FromResult(page.Count);
        }, CancellationToken.None, pageSize: 3);

        Assert.Equal(7, total);
        Assert.Equal([3, 3, 1], pages.Select(p => p.Count));
        Assert.Equal(messages.Select(m => m.Id), pages.SelectMany(p => p));
        Assert.Empty(store.DeadLetterIds("inv", null, null, 10).Items);
    }
}
