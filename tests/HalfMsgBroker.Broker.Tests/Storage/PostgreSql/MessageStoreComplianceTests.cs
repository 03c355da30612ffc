using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Shared;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>
/// The storage port's contract, run against both providers with the same test body: what one stores,
/// finds and lists, the other must too (ids, order, pages, refusals).
/// </summary>
public sealed class MessageStoreComplianceTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    private readonly MessageIds _ids = new();
    private long _clock = 1_000;

    public static TheoryData<string> Providers => StoreUnderTest.Providers;

    private StoredMessage Message(string topic = "orders", string[]? keys = null, string? tx = null, MessageState state = MessageState.Committed,
        long nextCheckAt = 0, string? idempotencyKey = null, string producerGroup = "pg-a") => new()
    {
        Id = _ids.Next(_clock++),
        Topic = topic,
        Keys = keys ?? [],
        Body = "{\"n\":1}"u8.ToArray(),
        TransactionId = tx,
        ProducerGroup = tx is null ? null : producerGroup,
        IdempotencyKey = idempotencyKey,
        State = state,
        BornAt = 1,
        NextCheckAt = nextCheckAt,
    };

    private static StoredMessage Open(StoredMessage m, params string[] groups)
    {
        foreach (var g in groups) m.Deliveries.Add(new StoredDelivery { Group = g, State = DeliveryState.Pending });
        return m;
    }

    private static void Store(IMessageStore store, params StoredMessage[] messages) => store.RunBatch(() =>
    {
        foreach (var m in messages) store.Insert(m);
    });

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public async Task Messages_round_trip_every_field_and_survive_reopening(string provider)
    {
        await using var under = await StoreUnderTest.Create(provider, cluster);
        var m = Message(keys: ["k1", "k2"], tx: "tx-1", state: MessageState.Prepared, nextCheckAt: 5_000);
        var full = new StoredMessage
        {
            Id = m.Id, Topic = m.Topic, Keys = m.Keys, Body = m.Body, TransactionId = m.TransactionId, ProducerGroup = m.ProducerGroup,
            State = MessageState.Prepared, BornAt = 7, NextCheckAt = 5_000, Tag = "created", TraceParent = "00-abc-def-01", OrderingKey = "o-1",
            Properties = new Dictionary<string, string>(StringComparer.Ordinal) { ["region"] = "eu" }, Members = [Guid.NewGuid()],
            CheckCount = 2, LastCheckAt = 4_000, LastCheckResult = "unknown", UnknownCount = 2, UnreachableCount = 1, UnreachableStreak = 1,
        };
        using (var store = under.Open())
        {
            Store(store, full);
            full.State = MessageState.Committed;
            full.ResolvedBy = ResolvedBy.Producer;
            full.ResolvedAt = 6_000;
            full.CommitSeq = 42;
            Open(full, "g1").Deliveries[0].Attempts = 3;
            store.RunBatch(() => store.Update(full));
        }
        using (var reopened = under.Open())
        {
            Assert.Equal(StoreUnderTest.Encoded(full), StoreUnderTest.Encoded(reopened.Find(full.Id)!));
            Assert.Equal(full.Id, reopened.FindByTransactionId("tx-1")!.Id);
            Assert.Null(reopened.FindByTransactionId("TX-1")); // keys compare byte for byte
            Assert.Null(reopened.Find(Guid.NewGuid()));
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public async Task A_batch_sees_its_own_writes_before_they_are_stored(string provider)
    {
        await using var under = await StoreUnderTest.Create(provider, cluster);
        using var store = under.Open();
        var old = Message(tx: "old");
        var keyed = Message(topic: "payments", idempotencyKey: "K-1");
        Store(store, old, keyed);

        var fresh = Message(tx: "fresh", state: MessageState.Prepared, nextCheckAt: 10);
        store.RunBatch(() =>
        {
            store.Insert(fresh);
            Assert.Equal(fresh.Id, store.Find(fresh.Id)!.Id);
            Assert.Equal(fresh.Id, store.FindByTransactionId("fresh")!.Id);
            fresh.State = MessageState.Committed;
            store.Update(fresh);
            Assert.Equal(MessageState.Committed, store.Find(fresh.Id)!.State);

            Assert.Equal(old.Id, store.FindByTransactionId("old")!.Id); // stored before: read from the store
            store.Delete(old);
            Assert.Null(store.Find(old.Id));
            Assert.Null(store.FindByTransactionId("old"));
            Assert.Equal(keyed.Id, store.FindByIdempotencyKey("payments", "K-1")!.Id);
            Assert.Null(store.FindByIdempotencyKey("orders", "K-1"));

            store.SaveProducerGroup(new ProducerGroup("pg-new", "http://127.0.0.1:1/check", 3000));
            Assert.Equal("http://127.0.0.1:1/check", store.GetProducerGroup("pg-new")!.CheckUrl);
        });

        Assert.Equal(MessageState.Committed, store.Find(fresh.Id)!.State);
        Assert.Null(store.Find(old.Id));
        Assert.Null(store.FindByTransactionId("old"));
        Assert.Equal(1, store.ProducerGroupCount());
    }

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public async Task A_taken_transaction_id_or_idempotency_key_refuses_the_whole_batch(string provider)
    {
        await using var under = await StoreUnderTest.Create(provider, cluster);
        using var store = under.Open();
        Store(store, Message(tx: "T-1"), Message(topic: "payments", idempotencyKey: "K-1"));

        var innocent = Message();
        Assert.Throws<DuplicateKeyException>(() => Store(store, innocent, Message(tx: "T-1")));
        Assert.Throws<DuplicateKeyException>(() => Store(store, innocent, Message(topic: "payments", idempotencyKey: "K-1")));
        Assert.Throws<DuplicateKeyException>(() => Store(store, Message(tx: "T-2"), Message(tx: "T-2")));
        Assert.Null(store.Find(innocent.Id));
        Assert.Null(store.FindByTransactionId("T-2"));
        Assert.True(LiteDbMessageStore.IsDuplicateKey(new DuplicateKeyException("x")));

        // Keys are scoped and exact: another topic's Idempotency-Key, another case, are other keys.
        Store(store, Message(topic: "orders", idempotencyKey: "K-1"), Message(tx: "t-1"));
        Assert.NotNull(store.FindByIdempotencyKey("orders", "K-1"));

        // A key freed by a delete is free for an insert in the same batch.
        var holder = store.FindByTransactionId("T-1")!;
        var successor = Message(tx: "T-1");
        store.RunBatch(() =>
        {
            store.Delete(holder);
            store.Insert(successor);
        });
        Assert.Equal(successor.Id, store.FindByTransactionId("T-1")!.Id);
    }

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public async Task A_failed_batch_leaves_nothing_behind(string provider)
    {
        await using var under = await StoreUnderTest.Create(provider, cluster);
        using var store = under.Open();
        var m = Message(tx: "gone");
        Assert.Throws<InvalidOperationException>(() => store.RunBatch(() =>
        {
            store.Insert(m);
            store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 1 });
            throw new InvalidOperationException("a command failed");
        }));
        Assert.Null(store.Find(m.Id));
        Assert.Null(store.FindByTransactionId("gone"));
        Assert.Empty(store.TopicCounts());
        Store(store, Message(tx: "gone")); // the key was never taken
    }

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public async Task Due_checks_purges_and_open_messages_each_come_from_their_own_range(string provider)
    {
        await using var under = await StoreUnderTest.Create(provider, cluster);
        using var store = under.Open();
        var at300 = Message(tx: "a", state: MessageState.Prepared, nextCheckAt: 300);
        var at100 = Message(tx: "b", state: MessageState.Prepared, nextCheckAt: 100);
        var at200 = Message(tx: "c", state: MessageState.Prepared, nextCheckAt: 200);
        var later = Message(tx: "d", state: MessageState.Prepared, nextCheckAt: 900);
        // A multi-message transaction's other messages are checked through its first: in no queue.
        var member = Message(state: MessageState.Prepared, nextCheckAt: 50);
        member.InTransaction = "a";
        var open = Open(Message(), "g1", "g2");
        open.DeliverAt = 77;
        var finished = Message();
        finished.PurgeAt = 500;
        var finishedLater = Message();
        finishedLater.PurgeAt = 5_000;
        Store(store, at300, at100, at200, later, member, open, finished, finishedLater);

        Assert.Equal([at100.Id, at200.Id], store.DueChecks(250, 10).Select(m => m.Id));
        Assert.Equal([at200.Id, at100.Id], store.DueChecks(250, 10, latestFirst: true).Select(m => m.Id));
        Assert.Equal([at100.Id], store.DueChecks(1_000, 1).Select(m => m.Id));
        Assert.Equal(100, store.EarliestCheckDue());
        Assert.Equal([finished.Id], store.DuePurges(1_000, 10));
        var reloaded = Assert.Single(store.OpenMessages());
        Assert.Equal((open.Id, "orders", 77L), (reloaded.Id, reloaded.Topic, reloaded.DeliverAt));
        Assert.Equal(["g1", "g2"], reloaded.Deliveries.Select(d => d.Group));

        // A commit leaves the check queue; the last ack leaves the open range for the purge queue.
        at100.State = MessageState.Committed;
        at100.ResolvedAt = 400;
        Open(at100, "g1");
        open.Deliveries.ForEach(d => d.State = DeliveryState.Acked);
        open.PurgeAt = 600;
        store.RunBatch(() =>
        {
            store.Update(at100);
            store.Update(open);
        });
        Assert.Equal(200, store.EarliestCheckDue());
        Assert.Equal([at100.Id], store.OpenMessages().Select(o => o.Id));
        Assert.Equal([finished.Id, open.Id], store.DuePurges(1_000, 10));
        Assert.Equal([finished.Id], store.DuePurges(1_000, 1));
        store.RunBatch(() =>
        {
            foreach (var m in new[] { at300, at200, later }) store.Delete(m);
        });
        Assert.Null(store.EarliestCheckDue());
    }

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public async Task Dead_letters_list_count_and_expire_from_their_index(string provider)
    {
        await using var under = await StoreUnderTest.Create(provider, cluster);
        using var store = under.Open();
        var messages = Enumerable.Range(0, 5).Select(i => Open(Message(topic: i % 2 == 0 ? "orders" : "refunds"), "g")).ToArray();
        Store(store, messages);
        store.RunBatch(() =>
        {
            for (var i = 0; i < messages.Length; i++)
            {
                var d = messages[i].Deliveries[0];
                d.State = DeliveryState.DeadLettered;
                d.DeadLetteredAt = 1_000 - i; // the newest message was dead-lettered first
                store.Update(messages[i]);
                store.PutDeadLetter(new DeadLetterRef("g", messages[i].Topic, messages[i].Id), d.DeadLetteredAt);
            }
        });

        var first = store.DeadLetterIds("g", null, null, 2);
        Assert.Equal([messages[0].Id, messages[1].Id], first.Items);
        Assert.Equal(messages[1].Id, first.Next);
        var rest = store.DeadLetterIds("g", null, first.Next, 10);
        Assert.Equal([messages[2].Id, messages[3].Id, messages[4].Id], rest.Items);
        Assert.Null(rest.Next);
        Assert.Equal([messages[0].Id, messages[2].Id, messages[4].Id], store.DeadLetterIds("g", "orders", null, 10).Items);
        Assert.Equal([messages[1].Id, messages[3].Id], store.DeadLetters("g", "refunds", null, 10).Items.Select(m => m.Id));
        Assert.Empty(store.DeadLetterIds("other", null, null, 10).Items);
        Assert.Equal(3, store.CountDeadLetters("g", "orders"));
        Assert.Equal(
            [new DeadLetterRef("g", "orders", messages[4].Id), new DeadLetterRef("g", "refunds", messages[3].Id)],
            store.ExpiredDeadLetters(998, 10));

        // A redrive deletes the entry with the message's change.
        Assert.True(DeliveryLifecycle.Redrive(messages[0].Deliveries[0]));
        store.RunBatch(() =>
        {
            store.Update(messages[0]);
            store.DeleteDeadLetter(new DeadLetterRef("g", "orders", messages[0].Id));
        });
        Assert.Equal(2, store.CountDeadLetters("g", "orders"));
        Assert.Equal([messages[2].Id, messages[4].Id], store.DeadLetters("g", "orders", null, 10).Items.Select(m => m.Id));
    }

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public async Task Key_lookups_and_replays_page_in_order(string provider)
    {
        await using var under = await StoreUnderTest.Create(provider, cluster);
        using var store = under.Open();
        var a = Message(keys: ["order-7"]);
        var b = Message(topic: "refunds", keys: ["order-7", "x"]);
        var c = Message(keys: ["order-7"]);
        var other = Message(keys: ["order-70", "ORDER-7"]);
        Store(store, a, b, c, other);

        var page = store.FindByKey("order-7", null, null, 2);
        Assert.Equal([a.Id, b.Id], page.Items.Select(m => m.Id));
        Assert.Equal(b.Id, page.Next);
        var last = store.FindByKey("order-7", null, page.Next, 2);
        Assert.Equal([c.Id], last.Items.Select(m => m.Id));
        Assert.Null(last.Next);
        Assert.Equal([a.Id, c.Id], store.FindByKey("order-7", "orders", null, 10).Items.Select(m => m.Id));
        Assert.Empty(store.FindByKey("order", null, null, 10).Items);

        // Replays walk a topic's commits in commit order, not id order.
        var committed = new[] { (a, 300L), (c, 100L), (other, 200L) };
        store.RunBatch(() =>
        {
            foreach (var (m, at) in committed)
            {
                m.ResolvedAt = at;
                store.Update(m);
            }
        });
        var first = store.CommittedOn("orders", 0, 1_000, null, 2);
        Assert.Equal([new CommittedRef(100, c.Id), new CommittedRef(200, other.Id)], first);
        Assert.Equal([new CommittedRef(300, a.Id)], store.CommittedOn("orders", 0, 1_000, first[^1], 2));
        Assert.Equal([new CommittedRef(200, other.Id)], store.CommittedOn("orders", 150, 250, null, 10));
        Assert.Empty(store.CommittedOn("refunds", 0, 1_000, null, 10));
    }

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public async Task Transactions_list_in_id_order_and_stop_at_the_page(string provider)
    {
        await using var under = await StoreUnderTest.Create(provider, cluster);
        using var store = under.Open();
        var prepared1 = Message(tx: "p1", state: MessageState.Prepared, nextCheckAt: 900);
        var committed1 = Message(tx: "c1");
        var plain = Message();
        var prepared2 = Message(topic: "refunds", tx: "p2", state: MessageState.Prepared, nextCheckAt: 100, producerGroup: "pg-b");
        var rolledBack = Message(tx: "r1", state: MessageState.RolledBack);
        var committed2 = Message(tx: "c2");
        Store(store, prepared1, committed1, plain, prepared2, rolledBack, committed2);

        Ids([prepared1, committed1, prepared2], store.Transactions(null, null, null, null, 3, _ => true));
        Ids([rolledBack, committed2], store.Transactions(null, null, null, prepared2.Id, 3, _ => true));
        Ids([committed1, committed2], store.Transactions(MessageState.Committed, null, null, null, 10, _ => true));
        Ids([prepared1, prepared2], store.Transactions(MessageState.Prepared, null, null, null, 10, _ => true));
        Ids([prepared2], store.Transactions(MessageState.Prepared, null, null, prepared1.Id, 10, _ => true));
        Ids([prepared2], store.Transactions(null, "pg-b", null, null, 10, _ => true));
        Ids([prepared2], store.Transactions(null, null, "refunds", null, 10, _ => true));
        Ids([committed2], store.Transactions(null, null, null, null, 1, m => m.TransactionId == "c2"));
    }

    private static void Ids(StoredMessage[] expected, IReadOnlyList<StoredMessage> actual) =>
        Assert.Equal(expected.Select(m => m.Id), actual.Select(m => m.Id));

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public async Task Subscriptions_producer_groups_and_topic_counts_are_kept(string provider)
    {
        await using var under = await StoreUnderTest.Create(provider, cluster);
        using (var store = under.Open())
        {
            store.RunBatch(() =>
            {
                store.SaveSubscription(new Subscription("g1", "orders", TagFilter.All, new PushTarget("http://127.0.0.1:9/push", 2000), 5, ExhaustedAction.Discard, 11));
                store.SaveSubscription(new Subscription("g2", "orders", TagFilter.All, null, 3, ExhaustedAction.DeadLetter, 12, Paused: true));
                store.SaveSubscription(new Subscription("G1", "orders", TagFilter.All, null, 3, ExhaustedAction.DeadLetter, 13));
                store.SaveProducerGroup(new ProducerGroup("pg-b", null, 1000, MaxChecksInFlight: 4));
                store.SaveProducerGroup(new ProducerGroup("pg-a", "http://127.0.0.1:9/check", 2000, MaxChecksPerSecond: 0));
                store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = 3, ["refunds"] = 1 });
            });
            store.RunBatch(() =>
            {
                store.DeleteSubscription("g2", "orders");
                store.AddToTopicCounts(new Dictionary<string, long> { ["orders"] = -1 });
            });
        }
        using var reopened = under.Open();
        var subscriptions = reopened.Subscriptions().OrderBy(s => s.Group, StringComparer.Ordinal).ToList();
        Assert.Equal(["G1", "g1"], subscriptions.Select(s => s.Group));
        Assert.Equal(new PushTarget("http://127.0.0.1:9/push", 2000), subscriptions[1].Push);
        Assert.Equal((5, ExhaustedAction.Discard, 11L), (subscriptions[1].MaxAttempts, subscriptions[1].OnExhausted, subscriptions[1].CreatedAt));
        Assert.Equal(["pg-a", "pg-b"], reopened.ProducerGroups().Select(g => g.Name));
        Assert.Equal(2, reopened.ProducerGroupCount());
        Assert.Equal(new ProducerGroup("pg-b", null, 1000, MaxChecksInFlight: 4), reopened.GetProducerGroup("pg-b"));
        Assert.Equal(0, reopened.GetProducerGroup("pg-a")!.MaxChecksPerSecond);
        Assert.Null(reopened.GetProducerGroup("PG-A"));
        Assert.Equal([new TopicCount("orders", 2), new TopicCount("refunds", 1)], reopened.TopicCounts());
    }

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public async Task The_receipt_key_is_made_once_and_kept_across_reopening(string provider)
    {
        await using var under = await StoreUnderTest.Create(provider, cluster);
        byte[] key;
        using (var store = under.Open())
        {
            key = store.ReceiptKey();
            Assert.Equal(32, key.Length);
            Assert.Equal(key, store.ReceiptKey());
        }
        using var reopened = under.Open();
        Assert.Equal(key, reopened.ReceiptKey());
    }
}
