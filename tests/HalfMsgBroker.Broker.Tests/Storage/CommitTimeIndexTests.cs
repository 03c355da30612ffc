using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using LiteDB;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>
/// What a replay walks: committed messages of one topic by commit time (not by id, which follows the
/// birth of a half message), read from the index alone in pages, and a file written before the index
/// existed indexed once at open.
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class CommitTimeIndexTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-commit-time-tests", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_path);

    private static StoredMessage Message(string topic, MessageState state, long committedAt, string? tx = null) => new()
    {
        Id = Guid.CreateVersion7(),
        Topic = topic,
        Body = """{"n":1}"""u8.ToArray(),
        TransactionId = tx,
        State = state,
        BornAt = 1,
        ResolvedAt = committedAt,
    };

    [Fact]
    public void Committed_messages_of_a_topic_are_walked_by_commit_time_in_pages()
    {
        // Born first, committed last: the walk follows commit time.
        var lateCommit = Message("orders", MessageState.Committed, 500, tx: "late");
        var early = Message("orders", MessageState.Committed, 100);
        var sameMs = Enumerable.Range(0, 5).Select(_ => Message("orders", MessageState.Committed, 300)).ToList();
        var tooLate = Message("orders", MessageState.Committed, 900);
        var otherTopic = Message("orders2", MessageState.Committed, 300);
        var rolledBack = Message("orders", MessageState.RolledBack, 300, tx: "no");
        var prepared = Message("orders", MessageState.Prepared, 0, tx: "open");
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        store.RunBatch(() =>
        {
            foreach (var m in new[] { lateCommit, early, tooLate, otherTopic, rolledBack, prepared }.Concat(sameMs)) store.Insert(m);
        });

        var walked = new List<CommittedRef>();
        CommittedRef? after = null;
        while (true)
        {
            var page = store.CommittedOn("orders", 100, 800, after, 2);
            walked.AddRange(page);
            if (page.Count < 2) break;
            after = page[^1];
        }

        Assert.Equal(new[] { early.Id }.Concat(sameMs.Select(m => m.Id).Order()).Append(lateCommit.Id), walked.Select(r => r.Id));
        Assert.Equal([100L, 300, 300, 300, 300, 300, 500], walked.Select(r => r.CommittedAt));
        Assert.Empty(store.CommittedOn("orders", 501, 800, null, 10));
    }

    [Fact]
    public void The_walk_reads_the_commit_time_index_alone()
    {
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        var plan = store.ExplainCommittedOn("orders");
        Assert.Contains("INDEX RANGE SCAN", plan, StringComparison.Ordinal);
        Assert.Contains("\"r\"", plan, StringComparison.Ordinal);
        Assert.Contains("\"loader\":\"index\"", plan.Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_from_before_the_index_is_indexed_once_at_open()
    {
        var committed = Message("orders", MessageState.Committed, 200);
        var prepared = Message("orders", MessageState.Prepared, 0, tx: "open");
        using (var store = new LiteDbMessageStore(_path, Durability.Process))
        {
            store.RunBatch(() =>
            {
                store.Insert(committed);
                store.Insert(prepared);
            });
        }
        using (var db = new LiteDatabase(new ConnectionString { Filename = Path.Combine(_path, "broker.db") }))
        {
            var messages = db.GetCollection("messages");
            var doc = messages.FindById(committed.Id);
            Assert.True(doc.Remove(MessageCodec.ReplayField));
            messages.Update(doc);
            Assert.True(db.GetCollection("meta").Delete("replayKeysV1"));
        }

        var notices = new List<string>();
        using (var reopened = new LiteDbMessageStore(_path, Durability.Process, notice: notices.Add))
        {
            Assert.Equal(2, notices.Count);
            Assert.Contains("added 1 to the commit-time index", notices[1], StringComparison.Ordinal);
            Assert.Equal([committed.Id], reopened.CommittedOn("orders", 0, 1000, null, 10).Select(r => r.Id));
        }

        notices.Clear();
        using var again = new LiteDbMessageStore(_path, Durability.Process, notice: notices.Add);
        Assert.Empty(notices);
    }

    [Fact]
    public void Two_pending_migrations_share_one_read_of_the_stored_messages()
    {
        var committed = Message("orders", MessageState.Committed, 200);
        using (var store = new LiteDbMessageStore(_path, Durability.Process))
        {
            store.RunBatch(() => store.Insert(committed));
        }
        // A file from before both: the committed message filed under the old shared open key and not in the commit-time index.
        using (var db = new LiteDatabase(new ConnectionString { Filename = Path.Combine(_path, "broker.db") }))
        {
            var messages = db.GetCollection("messages");
            var doc = messages.FindById(committed.Id);
            doc[MessageCodec.QueueField] = MessageCodec.LegacyOpen;
            Assert.True(doc.Remove(MessageCodec.ReplayField));
            messages.Update(doc);
            Assert.True(db.GetCollection("meta").Delete("queueKeysV2"));
            Assert.True(db.GetCollection("meta").Delete("replayKeysV1"));
        }

        var notices = new List<string>();
        using (var reopened = new LiteDbMessageStore(_path, Durability.Process, notice: notices.Add))
        {
            Assert.Equal(2, notices.Count);
            Assert.Contains("Read 1 messages and rewrote the queue entries of 1 and added 1 to the commit-time index", notices[1], StringComparison.Ordinal);
            Assert.Equal([committed.Id], reopened.CommittedOn("orders", 0, 1000, null, 10).Select(r => r.Id));
        }
        using var after = new LiteDatabase(new ConnectionString { Filename = Path.Combine(_path, "broker.db") });
        Assert.NotEqual(MessageCodec.LegacyOpen, after.GetCollection("messages").FindById(committed.Id)[MessageCodec.QueueField].AsString);
    }
}
