using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using LiteDB;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>
/// What recovery reads: the open range (committed messages with deliveries to make) holds exactly
/// those, without bodies, in chunks; the check range holds only prepared messages; and files written
/// before the open range was keyed by id are rewritten once at open.
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class OpenRangeTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-open-range-tests", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_path);

    private static StoredMessage Message(MessageState state, long nextCheckAt = 0, string? tx = null, params string[] groups)
    {
        var m = new StoredMessage
        {
            Id = Guid.CreateVersion7(),
            Topic = "orders",
            Body = """{"orderId":1}"""u8.ToArray(),
            TransactionId = tx,
            State = state,
            BornAt = 1,
            NextCheckAt = nextCheckAt,
        };
        foreach (var g in groups) m.Deliveries.Add(new StoredDelivery { Group = g });
        return m;
    }

    [Fact]
    public void A_commit_moves_the_message_out_of_the_check_range_into_the_open_range()
    {
        var message = Message(MessageState.Prepared, nextCheckAt: 700, tx: "moved", "inv");
        var prepared = Message(MessageState.Prepared, nextCheckAt: 900, tx: "still-prepared");
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        store.RunBatch(() =>
        {
            store.Insert(message);
            store.Insert(prepared);
        });
        Assert.Empty(store.OpenMessages());

        Assert.Equal(EndOutcome.Applied, TransactionLifecycle.End(message, commit: true, ResolvedBy.Producer, now: 10));
        message.Deliveries[0].Attempts = 2;
        message.Deliveries[0].NextAttemptAt = 1234;
        message.DeliverAt = 99;
        store.RunBatch(() => store.Update(message));

        var open = Assert.Single(store.OpenMessages());
        Assert.Equal((message.Id, "orders", 99L), (open.Id, open.Topic, open.DeliverAt));
        var delivery = Assert.Single(open.Deliveries);
        Assert.Equal(("inv", DeliveryState.Pending, 2, 1234L), (delivery.Group, delivery.State, delivery.Attempts, delivery.NextAttemptAt));
        Assert.Equal([prepared.Id], store.DueChecks(long.MaxValue / 1000, 10).Select(m => m.Id));
        Assert.Equal(900, store.EarliestCheckDue());
    }

    [Fact]
    public void Recovery_reads_an_index_range_of_the_open_queue_and_no_prepared_message()
    {
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        var plan = store.ExplainOpenMessages();
        Assert.Contains("INDEX", plan.ToUpperInvariant(), StringComparison.Ordinal);
        Assert.Contains("\"q\"", plan, StringComparison.Ordinal);
        Assert.Contains("o:", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("c:", plan, StringComparison.Ordinal);
    }

    [Fact]
    public void The_open_range_is_read_in_chunks_and_every_open_message_comes_back_once()
    {
        // More than two chunks (5,000 each), so the walk resumes from the last key twice.
        var open = Enumerable.Range(0, 10_050).Select(_ => Message(MessageState.Committed, groups: "inv")).ToList();
        var finished = Message(MessageState.Committed);
        finished.PurgeAt = 5;
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        store.RunBatch(() =>
        {
            foreach (var m in open) store.Insert(m);
            store.Insert(finished);
        });

        var read = store.OpenMessages().Select(m => m.Id).ToList();
        Assert.Equal(open.Count, read.Count);
        Assert.Equal(open.Select(m => m.Id).Order(), read.Order());
    }

    [Fact]
    public void A_file_from_before_the_open_range_was_keyed_by_id_is_rewritten_once_at_open()
    {
        var legacyOpen = Message(MessageState.Committed, groups: "inv");
        var legacyFiled = Message(MessageState.Committed, tx: "filed", groups: "inv");
        legacyFiled.FiledCheckAt = 500;
        var prepared = Message(MessageState.Prepared, nextCheckAt: 800, tx: "prepared");
        using (var store = new LiteDbMessageStore(_path, Durability.Process))
        {
            store.RunBatch(() =>
            {
                store.Insert(legacyOpen);
                store.Insert(legacyFiled);
                store.Insert(prepared);
            });
        }
        // Make it the file an older broker wrote: open messages under "o", a committed one under its check time, no marker.
        using (var db = new LiteDatabase(new ConnectionString { Filename = Path.Combine(_path, "broker.db") }))
        {
            var messages = db.GetCollection("messages");
            foreach (var (id, key) in new[] { (legacyOpen.Id, "o"), (legacyFiled.Id, MessageCodec.CheckKey(500)) })
            {
                var doc = messages.FindById(id);
                doc[MessageCodec.QueueField] = key;
                messages.Update(doc);
            }
            Assert.True(db.GetCollection("meta").Delete("queueKeysV2"));
        }

        var notices = new List<string>();
        using (var reopened = new LiteDbMessageStore(_path, Durability.Process, notice: notices.Add))
        {
            Assert.Equal(2, notices.Count);
            Assert.Contains("rewrote the queue entries of 2", notices[1], StringComparison.Ordinal);
            Assert.Equal(new[] { legacyOpen.Id, legacyFiled.Id }.Order(), reopened.OpenMessages().Select(m => m.Id).Order());
            Assert.Equal([prepared.Id], reopened.DueChecks(long.MaxValue / 1000, 10).Select(m => m.Id));
            Assert.Equal(800, reopened.EarliestCheckDue());
        }

        notices.Clear();
        using var again = new LiteDbMessageStore(_path, Durability.Process, notice: notices.Add);
        Assert.Empty(notices);
        Assert.Equal(2, again.OpenMessages().Count());
    }
}
