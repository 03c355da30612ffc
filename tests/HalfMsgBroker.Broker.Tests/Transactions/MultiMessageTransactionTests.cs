using System.Net;
using System.Text.Json.Nodes;
using HalfMsgBroker.Tests.Access;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Transactions;

/// <summary>
/// Several messages in one transaction (issue 16 item 5): prepared together across topics, ended
/// together by a commit, a rollback or one check-back, and each message delivered and looked up as
/// any committed message.
/// </summary>
public sealed class MultiMessageTransactionTests : IAsyncLifetime
{
    private readonly BrokerFactory _factory = new();
    private HttpClient _c = null!;

    public async Task InitializeAsync()
    {
        _c = _factory.CreateClient();
        await _c.Subscribe("fulfilment", "orders");
        await _c.Subscribe("fulfilment", "stock");
    }

    public async Task DisposeAsync()
    {
        _c.Dispose();
        await _factory.DisposeAsync();
    }

    private static object Transaction(string transactionId, string group = "order-service", int? checkImmunitySeconds = 3600) => new
    {
        producerGroup = group,
        transactionId,
        checkImmunitySeconds,
        messages = new object[]
        {
            new { topic = "orders", body = new { orderId = 1 }, tag = "created", keys = new[] { "order-1" } },
            new { topic = "stock", body = new { sku = "A", reserve = 2 }, properties = new Dictionary<string, string> { ["warehouse"] = "north" } },
            new { topic = "orders", body = new { orderId = 1, line = 2 } },
        },
    };

    [Fact]
    public async Task A_commit_delivers_every_message_of_the_transaction_across_topics()
    {
        var sent = await _c.Post("/v1/transactions", Transaction("multi-commit"));
        Assert.True(sent.Status == HttpStatusCode.Created, sent.ToString());
        Assert.Equal("prepared", sent.Json.Str("state"));
        var ids = sent.Json["messages"]!.AsArray().Select(m => m.Str("messageId")).ToArray();
        Assert.Equal(["orders", "stock", "orders"], sent.Json["messages"]!.AsArray().Select(m => m.Str("topic")));

        // Prepared: nothing to consume yet, each message looked up by id as before.
        Assert.Empty(await _c.Receive("fulfilment", "orders"));
        Assert.Empty(await _c.Receive("fulfilment", "stock"));
        foreach (var id in ids)
        {
            var message = await _c.Message(id);
            Assert.Equal("prepared", message.Str("state"));
            Assert.Equal("multi-commit", message.Str("transactionId"));
        }
        var view = await _c.Transaction("multi-commit");
        Assert.Equal(ids, view["messages"]!.AsArray().Select(m => m.Str("messageId")));
        Assert.All(view["messages"]!.AsArray(), m => Assert.Equal("prepared", m.Str("state")));
        Assert.Equal(ids[0], view.Str("messageId"));

        var commit = await _c.Post("/v1/transactions/multi-commit/commit");
        Assert.Equal(HttpStatusCode.OK, commit.Status);
        Assert.Equal("committed", commit.Json.Str("state"));

        var orders = await _c.Receive("fulfilment", "orders");
        var stock = await _c.Receive("fulfilment", "stock");
        Assert.Equal([ids[0], ids[2]], orders.Select(m => m.Str("messageId")).Order());
        Assert.Equal([ids[1]], stock.Select(m => m.Str("messageId")));
        Assert.Equal("north", stock[0]!["properties"].Str("warehouse"));
        var committed = await _c.Transaction("multi-commit");
        Assert.Equal("committed", committed.Str("state"));
        Assert.All(committed["messages"]!.AsArray(), m => Assert.Equal("committed", m.Str("state")));
        Assert.Equal(HttpStatusCode.Conflict, (await _c.Post("/v1/transactions/multi-commit/rollback")).Status);
    }

    [Fact]
    public async Task A_rollback_delivers_none_of_them()
    {
        Assert.Equal(HttpStatusCode.Created, (await _c.Post("/v1/transactions", Transaction("multi-rollback"))).Status);
        Assert.Equal("rolledBack", (await _c.Post("/v1/transactions/multi-rollback/rollback")).Json.Str("state"));

        var view = await _c.Transaction("multi-rollback");
        Assert.All(view["messages"]!.AsArray(), m => Assert.Equal("rolledBack", m.Str("state")));
        // A plain send after it shows the subscriptions are live: only it arrives.
        var after = await _c.Send("orders", new { n = "after" });
        Assert.Equal([after], (await _c.Receive("fulfilment", "orders")).Select(m => m.Str("messageId")));
        Assert.Empty(await _c.Receive("fulfilment", "stock"));
    }

    [Fact]
    public async Task One_check_back_call_commits_the_whole_transaction()
    {
        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
        await _c.Put("/v1/producer-groups/checked-service", new { checkUrl = checker.Url });
        // Due CheckAfter (200 ms in tests) after it is sent.
        var sent = await _c.Post("/v1/transactions", Transaction("multi-checked", "checked-service", checkImmunitySeconds: null));
        Assert.Equal(HttpStatusCode.Created, sent.Status);

        var view = await Eventually.Until(() => _c.Transaction("multi-checked"), v => v.Str("state") == "committed", "the check-back's commit");
        Assert.Equal("check", view.Str("resolvedBy"));
        Assert.All(view["messages"]!.AsArray(), m => Assert.Equal("committed", m.Str("state")));
        // The lookup can show the commit a moment before its deliveries are live (they go live once it is
        // on disk), so the receives wait for them.
        var orders = new List<string?>();
        await Eventually.Until(async () =>
        {
            orders.AddRange((await _c.Receive("fulfilment", "orders", wait: 1)).Select(m => m.Str("messageId")));
            return orders.Count;
        }, n => n >= 2, "both orders messages");
        Assert.Equal(2, orders.Count);
        Assert.Single(await _c.Receive("fulfilment", "stock", wait: 1));
        // One call for the transaction, about its first message; nothing else of it is ever due again.
        var call = Assert.Single(checker.Requests);
        Assert.Equal("multi-checked", call.Body.Str("transactionId"));
        Assert.Equal(sent.Json["messages"]![0].Str("messageId"), call.Body.Str("messageId"));
        Assert.Equal(1, view.Int("checkCount"));
    }

    [Fact]
    public async Task Bad_requests_are_refused_whole_and_store_nothing()
    {
        var one = new { topic = "orders", body = new { n = 1 } };
        var cases = new (object Body, string Field)[]
        {
            (new { producerGroup = "order-service", transactionId = "bad-1", messages = Array.Empty<object>() }, "messages"),
            (new { producerGroup = "order-service", transactionId = "bad-1" }, "messages"),
            (new { producerGroup = "order-service", transactionId = "bad-1", messages = Enumerable.Repeat(one, 101).ToArray() }, "messages"),
            (new { producerGroup = "order-service", transactionId = "bad-1", messages = new object[] { one, new { topic = "no topic!", body = new { n = 2 } } } }, "messages[1].topic"),
            (new { producerGroup = "order-service", transactionId = "bad-1", messages = new object[] { one, new { topic = "stock", producerGroup = "other-service", body = new { n = 2 } } } },
                "messages[1].producerGroup"),
            (new { transactionId = "bad-1", messages = new object[] { one } }, "producerGroup"),
            (new { producerGroup = "order-service", transactionId = "bad id", messages = new object[] { one } }, "transactionId"),
            (new { producerGroup = "order-service", transactionId = "bad-1", messages = new object?[] { one, null } }, "messages[1]"),
        };
        foreach (var (body, field) in cases)
        {
            var answer = await _c.Post("/v1/transactions", body);
            Assert.True(answer.Status == HttpStatusCode.BadRequest, $"{field}: {answer}");
            Assert.Contains(field, answer.Raw, StringComparison.Ordinal);
        }
        Assert.Equal(HttpStatusCode.NotFound, (await _c.Get("/v1/transactions/bad-1")).Status);
        // 100 is allowed, and without a transactionId one is made up, as for a half message.
        var hundred = await _c.Post("/v1/transactions", new { producerGroup = "order-service", messages = Enumerable.Repeat(one, 100).ToArray() });
        Assert.Equal(HttpStatusCode.Created, hundred.Status);
        Assert.Equal(100, (await _c.Transaction(hundred.Json.Str("transactionId")))["messages"]!.AsArray().Count);
    }

    [Fact]
    public async Task A_repeated_transaction_id_replays_the_same_transaction_and_conflicts_with_anything_else()
    {
        var first = await _c.Post("/v1/transactions", Transaction("multi-again"));
        Assert.Equal(HttpStatusCode.Created, first.Status);
        var again = await _c.Post("/v1/transactions", Transaction("multi-again"));
        Assert.Equal(HttpStatusCode.OK, again.Status);
        Assert.Equal(first.Json["messages"]!.ToJsonString(), again.Json["messages"]!.ToJsonString());

        // Another body, another group, fewer messages, or the id as a single half message: 409, as for a half message.
        var otherBody = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(Transaction("multi-again")))!;
        otherBody["messages"]![1]!["body"] = new JsonObject { ["sku"] = "B" };
        var fewer = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(Transaction("multi-again")))!;
        fewer["messages"]!.AsArray().RemoveAt(2);
        foreach (var conflicting in new[]
        {
            await _c.Post("/v1/transactions", otherBody),
            await _c.Post("/v1/transactions", Transaction("multi-again", "other-service")),
            await _c.Post("/v1/transactions", fewer),
            await _c.Post("/v1/topics/orders/half-messages", new { producerGroup = "order-service", transactionId = "multi-again", body = new { orderId = 1 } }),
        })
        {
            Assert.Equal(HttpStatusCode.Conflict, conflicting.Status);
            Assert.Equal("transaction-conflict", conflicting.Code);
        }

        // A single half message's id cannot be taken by a transaction either.
        await _c.SendHalf("orders", "single-first");
        var taken = await _c.Post("/v1/transactions", Transaction("single-first"));
        Assert.Equal(HttpStatusCode.Conflict, taken.Status);
        Assert.Null((await _c.Transaction("single-first"))["messages"]);
    }

    [Fact]
    public async Task Every_topic_and_the_producer_group_must_be_in_the_keys_scopes()
    {
        var (_, key) = await Keys.Create(_c, "orders-only", "producer", producerGroups: ["order-service"], topics: ["orders"]);
        using var producer = _factory.CreateClient(key);
        var refused = await producer.Post("/v1/transactions", Transaction("scoped"));
        Assert.Equal(HttpStatusCode.Forbidden, refused.Status);
        Assert.Contains("stock", refused.Raw, StringComparison.Ordinal);
        var otherGroup = await producer.Post("/v1/transactions", new
        {
            producerGroup = "billing-service", transactionId = "scoped", messages = new[] { new { topic = "orders", body = new { n = 1 } } },
        });
        Assert.Equal(HttpStatusCode.Forbidden, otherGroup.Status);
        Assert.Equal(HttpStatusCode.NotFound, (await _c.Get("/v1/transactions/scoped")).Status);

        var allowed = await producer.Post("/v1/transactions", new
        {
            producerGroup = "order-service", transactionId = "scoped", messages = new[] { new { topic = "orders", body = new { n = 1 } }, new { topic = "orders", body = new { n = 2 } } },
        });
        Assert.Equal(HttpStatusCode.Created, allowed.Status);
        Assert.Equal(HttpStatusCode.OK, (await producer.Post("/v1/transactions/scoped/commit")).Status);
    }

    [Fact]
    public async Task Ordering_keys_on_a_transactions_messages_deliver_them_in_the_transactions_order_one_at_a_time()
    {
        var sent = await _c.Post("/v1/transactions", new
        {
            producerGroup = "order-service",
            transactionId = "multi-ordered",
            checkImmunitySeconds = 3600,
            messages = new object[]
            {
                new { topic = "orders", body = new { step = 1 }, orderingKey = "order-7" },
                new { topic = "orders", body = new { step = 2 }, orderingKey = "order-7" },
            },
        });
        Assert.Equal(HttpStatusCode.Created, sent.Status);
        var ids = sent.Json["messages"]!.AsArray().Select(m => m.Str("messageId")).ToList();
        Assert.Equal("order-7", (await _c.Get($"/v1/messages/{ids[1]}")).Json.Str("orderingKey"));
        Assert.Equal("committed", (await _c.Post("/v1/transactions/multi-ordered/commit")).Json.Str("state"));

        // One at a time: the second only once the first is acked.
        var first = Assert.Single(await _c.Receive("fulfilment", "orders", wait: 2));
        Assert.Equal(ids[0], first.Str("messageId"));
        Assert.Equal("order-7", first.Str("orderingKey"));
        Assert.Empty(await _c.Receive("fulfilment", "orders"));
        Assert.True((int)(await _c.Ack("fulfilment", first.Str("receiptHandle")!)).Status < 300, "the ack is taken");
        var second = Assert.Single(await _c.Receive("fulfilment", "orders", wait: 2));
        Assert.Equal(ids[1], second.Str("messageId"));
    }

    [Fact]
    public async Task A_bad_ordering_key_on_a_transactions_message_is_refused_and_nothing_is_stored()
    {
        var refused = await _c.Post("/v1/transactions", new
        {
            producerGroup = "order-service",
            transactionId = "multi-bad-key",
            messages = new object[] { new { topic = "orders", body = new { step = 1 }, orderingKey = new string('k', 129) } },
        });
        Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
        Assert.Contains("messages[0].orderingKey", refused.Json.Str("detail"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await _c.Get("/v1/transactions/multi-bad-key")).Status);
    }
}
