using System.Net;
using System.Text.Json.Nodes;
using HalfMsgBroker.Tests.Access;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Api;

public sealed class BatchApiTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    private readonly HttpClient _c = broker.Client;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private static string[] Statuses(Http.Answer answer) =>
        answer.Json["results"]!.AsArray().Select(r => r.Str("status")).ToArray();

    private async Task<int> MessageCount(string topic)
    {
        var topics = (await _c.Get("/v1/topics")).Json["topics"]!.AsArray();
        return topics.SingleOrDefault(t => t.Str("topic") == topic)?.Int("messageCount") ?? 0;
    }

    [Fact]
    public async Task Plain_sends_to_several_topics_are_stored_in_order_and_replay_by_idempotency_key()
    {
        var a = Unique("batch-a");
        var b = Unique("batch-b");
        var first = await _c.Post("/v1/messages/batch", new
        {
            items = new object[]
            {
                new { topic = a, body = new { n = 1 }, idempotencyKey = "k1", tag = "created" },
                new { topic = b, body = new { n = 2 }, keys = new[] { "order-7" } },
                new { topic = a, body = new { n = 3 }, idempotencyKey = "k3" },
            },
        });
        Assert.True(first.Status == HttpStatusCode.OK, first.ToString());
        Assert.Equal(["created", "created", "created"], Statuses(first));
        var ids = first.Json["results"]!.AsArray().Select(r => r.Str("messageId")).ToArray();
        Assert.Equal(3, ids.Distinct().Count());
        Assert.All(first.Json["results"]!.AsArray(), r => Assert.Equal("committed", r.Str("state")));
        Assert.Equal(ids.Order(StringComparer.Ordinal), ids); // time-ordered ids: stored in the order sent

        var again = await _c.Post("/v1/messages/batch", new
        {
            items = new object[]
            {
                new { topic = a, body = new { n = 1 }, idempotencyKey = "k1", tag = "created" },
                new { topic = a, body = new { n = 99 }, idempotencyKey = "k3" },
                new { topic = b, body = new { n = 4 } },
            },
        });
        Assert.True(again.Status == HttpStatusCode.OK, again.ToString());
        Assert.Equal(["replayed", "conflict", "created"], Statuses(again));
        var results = again.Json["results"]!.AsArray();
        Assert.Equal(ids[0], results[0].Str("messageId"));
        Assert.Equal("idempotency-conflict", results[1].Str("code"));
        Assert.Contains("k3", results[1].Str("detail"), StringComparison.Ordinal);
        Assert.Null(results[1]!["messageId"]);

        // Items are stored in order: a later item with an earlier item's key is its replay.
        var twice = await _c.Post("/v1/messages/batch", new
        {
            items = new object[]
            {
                new { topic = a, body = new { n = 5 }, idempotencyKey = "k5" },
                new { topic = a, body = new { n = 5 }, idempotencyKey = "k5" },
                new { topic = a, body = new { n = 6 }, idempotencyKey = "k5" },
            },
        });
        Assert.True(twice.Status == HttpStatusCode.OK, twice.ToString());
        Assert.Equal(["created", "replayed", "conflict"], Statuses(twice));
        Assert.Equal(twice.Json["results"]![0].Str("messageId"), twice.Json["results"]![1].Str("messageId"));

        Assert.Equal(3, await MessageCount(a));
        Assert.Equal(2, await MessageCount(b));
        Assert.Equal("created", (await _c.Message(ids[0])).Str("tag"));
    }

    [Fact]
    public async Task A_batch_of_half_messages_then_a_batch_commit_delivers_them_all()
    {
        var topic = Unique("batch-half");
        var group = Unique("inventory");
        await _c.Subscribe(group, topic);
        var txs = Enumerable.Range(0, 5).Select(i => Unique($"tx{i}")).ToArray();
        var halves = await _c.Post("/v1/half-messages/batch",
            new { items = txs.Select(tx => new { topic, producerGroup = "order-service", transactionId = tx, body = new { tx } }).ToArray() },
            new Dictionary<string, string> { ["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
        Assert.True(halves.Status == HttpStatusCode.OK, halves.ToString());
        Assert.All(halves.Json["results"]!.AsArray(), r => Assert.Equal(("created", "prepared"), (r.Str("status"), r.Str("state"))));
        Assert.Equal(txs, halves.Json["results"]!.AsArray().Select(r => r.Str("transactionId")));
        Assert.Empty(await _c.Receive(group, topic));

        var commit = await _c.Post("/v1/transactions/commit", new { transactionIds = txs });
        Assert.True(commit.Status == HttpStatusCode.OK, commit.ToString());
        Assert.All(commit.Json["results"]!.AsArray(), r => Assert.Equal(("committed", "committed"), (r.Str("status"), r.Str("state"))));

        var received = new List<JsonNode>();
        await Eventually.Until(async () =>
        {
            received.AddRange((await _c.Receive(group, topic, wait: 1)).Select(m => m!));
            return received.Count;
        }, n => n >= txs.Length, "the committed batch to be received");
        Assert.Equal(txs.Order(StringComparer.Ordinal), received.Select(m => m["body"]!.Str("tx")).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_batch_of_half_messages_reports_replays_and_conflicts_per_item()
    {
        var topic = Unique("batch-half");
        var tx = Unique("tx");
        await _c.SendHalf(topic, tx, new { orderId = 1 });
        var other = Unique("tx");
        await _c.SendHalf(topic, other, new { orderId = 2 });

        var answer = await _c.Post("/v1/half-messages/batch", new
        {
            items = new object[]
            {
                new { topic, producerGroup = "order-service", transactionId = tx, body = new { orderId = 1 } },
                new { topic, producerGroup = "order-service", transactionId = other, body = new { orderId = 3 } },
                new { topic, producerGroup = "order-service", body = new { orderId = 4 } },
            },
        });
        Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        Assert.Equal(["replayed", "conflict", "created"], Statuses(answer));
        var results = answer.Json["results"]!.AsArray();
        Assert.Equal("transaction-conflict", results[1].Str("code"));
        Assert.Null(results[1]!["messageId"]);
        Assert.False(string.IsNullOrEmpty(results[2].Str("transactionId")), "a transactionId is made up for an item without one");
        Assert.Equal("prepared", (await _c.Transaction(results[2].Str("transactionId"))).Str("state"));
    }

    [Fact]
    public async Task A_batch_commit_reports_each_transaction_and_hides_other_producer_groups()
    {
        var admin = _c;
        var topic = Unique("batch-end");
        var producer = broker.Factory.CreateClient((await Keys.Create(admin, Unique("producer"), "producer", ["order-service"], null, ["batch-*"])).Key);
        var (open, rolledBack, committed, foreign) = (Unique("tx"), Unique("tx"), Unique("tx"), Unique("tx"));
        foreach (var tx in new[] { open, rolledBack, committed }) await admin.SendHalf(topic, tx);
        await admin.SendHalf(topic, foreign, group: "billing");
        Assert.Equal(HttpStatusCode.OK, (await admin.Post($"/v1/transactions/{rolledBack}/rollback")).Status);
        Assert.Equal(HttpStatusCode.OK, (await admin.Post($"/v1/transactions/{committed}/commit")).Status);

        var answer = await producer.Post("/v1/transactions/commit", new { transactionIds = new[] { open, rolledBack, committed, "never-sent", foreign } });
        Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        Assert.Equal(["committed", "conflict", "committed", "notFound", "notFound"], Statuses(answer));
        var results = answer.Json["results"]!.AsArray();
        Assert.Equal("rolledBack", results[1].Str("state"));
        Assert.Equal("transaction-conflict", results[1].Str("code"));
        Assert.Null(results[4]!["messageId"]);
        Assert.Equal("prepared", (await admin.Transaction(foreign)).Str("state"));

        var rollback = await producer.Post("/v1/transactions/rollback", new { transactionIds = new[] { open, Unique("tx") } });
        Assert.Equal(["conflict", "notFound"], Statuses(rollback));
        Assert.Equal("committed", rollback.Json["results"]![0].Str("state"));

        var toRollBack = Unique("tx");
        await admin.SendHalf(topic, toRollBack);
        var rolled = await producer.Post("/v1/transactions/rollback", new { transactionIds = new[] { toRollBack } });
        Assert.Equal(["rolledBack"], Statuses(rolled));
        Assert.Equal("rolledBack", (await admin.Transaction(toRollBack)).Str("state"));
    }

    [Fact]
    public async Task A_field_error_in_one_item_rejects_the_batch_naming_the_item_and_stores_nothing()
    {
        var topic = Unique("batch-bad");
        var items = Enumerable.Range(0, 5).Select(i => (object)new { topic, body = new { i }, tag = i == 3 ? "bad tag" : "ok" }).ToArray();
        var answer = await _c.Post("/v1/messages/batch", new { items });
        Assert.Equal(HttpStatusCode.BadRequest, answer.Status);
        Assert.Equal("invalid-field", answer.Code);
        Assert.NotNull(answer.Json["errors"]!["items[3].tag"]);
        Assert.Equal(0, await MessageCount(topic));

        var txs = Enumerable.Range(0, 4).Select(i => Unique("tx")).ToArray();
        var halves = await _c.Post("/v1/half-messages/batch", new
        {
            items = txs.Select((tx, i) => (object)new { topic, producerGroup = "order-service", transactionId = i == 3 ? "has space" : tx, body = new { i } }).ToArray(),
        });
        Assert.Equal(HttpStatusCode.BadRequest, halves.Status);
        Assert.NotNull(halves.Json["errors"]!["items[3].transactionId"]);
        Assert.Equal(HttpStatusCode.NotFound, (await _c.Get($"/v1/transactions/{txs[0]}")).Status);

        var ends = await _c.Post("/v1/transactions/commit", new { transactionIds = new[] { "ok", "a/b" } });
        Assert.Equal(HttpStatusCode.BadRequest, ends.Status);
        Assert.NotNull(ends.Json["errors"]!["transactionIds[1]"]);
    }

    [Fact]
    public async Task A_producer_key_with_one_item_outside_its_scopes_is_refused_as_a_whole()
    {
        var allowed = Unique("batch-ok");
        var producer = broker.Factory.CreateClient((await Keys.Create(_c, Unique("producer"), "producer", ["order-service"], null, ["batch-ok-*"])).Key);
        var outside = Unique("elsewhere");
        var answer = await producer.Post("/v1/messages/batch", new
        {
            items = new object[] { new { topic = allowed, body = 1 }, new { topic = allowed, body = 2 }, new { topic = outside, body = 3 } },
        });
        Assert.Equal(HttpStatusCode.Forbidden, answer.Status);
        Assert.Contains("items[2]", answer.Json.Str("detail"), StringComparison.Ordinal);
        Assert.Contains(outside, answer.Json.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(0, await MessageCount(allowed));

        var tx = Unique("tx");
        var halves = await producer.Post("/v1/half-messages/batch", new
        {
            items = new object[]
            {
                new { topic = allowed, producerGroup = "order-service", transactionId = tx, body = 1 },
                new { topic = allowed, producerGroup = "billing", body = 2 },
            },
        });
        Assert.Equal(HttpStatusCode.Forbidden, halves.Status);
        Assert.Contains("items[1]", halves.Json.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await _c.Get($"/v1/transactions/{tx}")).Status);

        var ok = await producer.Post("/v1/messages/batch", new { items = new object[] { new { topic = allowed, body = 1 } } });
        Assert.Equal(HttpStatusCode.OK, ok.Status);

        var consumer = broker.Factory.CreateClient((await Keys.Create(_c, Unique("consumer"), "consumer", null, ["inventory"])).Key);
        Assert.Equal(HttpStatusCode.Forbidden, (await consumer.Post("/v1/messages/batch", new { items = new object[] { new { topic = allowed, body = 1 } } })).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await consumer.Post("/v1/transactions/commit", new { transactionIds = new[] { tx } })).Status);
    }

    [Fact]
    public async Task Batches_over_their_item_limits_or_empty_are_refused()
    {
        var topic = Unique("batch-limit");
        var tooMany = await _c.Post("/v1/messages/batch", new { items = Enumerable.Range(0, 101).Select(i => new { topic, body = i }).ToArray() });
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.Status);
        Assert.NotNull(tooMany.Json["errors"]!["items"]);
        Assert.Equal(0, await MessageCount(topic));

        var halves = await _c.Post("/v1/half-messages/batch", new { items = Enumerable.Range(0, 101).Select(i => new { topic, producerGroup = "order-service", body = i }).ToArray() });
        Assert.Equal(HttpStatusCode.BadRequest, halves.Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await _c.Post("/v1/messages/batch", new { items = Array.Empty<object>() })).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await _c.Post("/v1/messages/batch", new { })).Status);

        var ends = await _c.Post("/v1/transactions/rollback", new { transactionIds = Enumerable.Range(0, 1001).Select(i => $"tx-{i}").ToArray() });
        Assert.Equal(HttpStatusCode.BadRequest, ends.Status);
        Assert.NotNull(ends.Json["errors"]!["transactionIds"]);

        var exactly = await _c.Post("/v1/messages/batch", new { items = Enumerable.Range(0, 100).Select(i => new { topic, body = i }).ToArray() });
        Assert.Equal(HttpStatusCode.OK, exactly.Status);
        Assert.Equal(100, await MessageCount(topic));
    }

    [Fact]
    public async Task A_batch_over_MaxMessageBytes_is_413_and_stores_nothing()
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:MaxMessageBytes"] = "4096" });
        using var c = factory.CreateClient();
        var topic = Unique("batch-big");
        var answer = await c.Post("/v1/messages/batch", new { items = Enumerable.Range(0, 20).Select(i => new { topic, body = new string('x', 300) }).ToArray() });
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, answer.Status);
        Assert.Equal("message-too-large", answer.Code);
        var topics = (await c.Get("/v1/topics")).Json["topics"]!.AsArray();
        Assert.DoesNotContain(topics, t => t.Str("topic") == topic);
    }
}
