using System.Net;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Api;

public sealed class ProducerApiTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    private readonly HttpClient _c = broker.Client;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task A_plain_send_is_committed_and_an_idempotency_key_replays_it()
    {
        var topic = Unique("plain");
        var headers = new Dictionary<string, string> { ["Idempotency-Key"] = "send-1" };
        var first = await _c.Post($"/v1/topics/{topic}/messages", new { body = new { n = 1 }, tag = "created", keys = new[] { "k1" } }, headers);
        Assert.Equal(HttpStatusCode.Created, first.Status);
        Assert.Equal("committed", first.Json.Str("state"));

        var replay = await _c.Post($"/v1/topics/{topic}/messages", new { body = new { n = 1 }, tag = "created", keys = new[] { "k1" } }, headers);
        Assert.Equal(HttpStatusCode.OK, replay.Status);
        Assert.Equal(first.Json.Str("messageId"), replay.Json.Str("messageId"));

        var other = await _c.Post($"/v1/topics/{topic}/messages", new { body = new { n = 2 } }, headers);
        Assert.Equal(HttpStatusCode.Conflict, other.Status);
        Assert.Equal("idempotency-conflict", other.Code);

        var topics = (await _c.Get("/v1/topics")).Json["topics"]!.AsArray();
        Assert.Equal(1, topics.Single(t => t.Str("topic") == topic).Int("messageCount"));
    }

    [Fact]
    public async Task A_half_message_replays_by_transaction_id_and_conflicts_on_a_different_body()
    {
        var topic = Unique("half");
        var tx = Unique("tx");
        var id = await _c.SendHalf(topic, tx, new { orderId = 1 });
        var replay = await _c.Post($"/v1/topics/{topic}/half-messages", new { producerGroup = "order-service", transactionId = tx, body = new { orderId = 1 } });
        Assert.Equal(HttpStatusCode.OK, replay.Status);
        Assert.Equal(id, replay.Json.Str("messageId"));
        Assert.Equal("prepared", replay.Json.Str("state"));

        var otherBody = await _c.Post($"/v1/topics/{topic}/half-messages", new { producerGroup = "order-service", transactionId = tx, body = new { orderId = 2 } });
        Assert.Equal(HttpStatusCode.Conflict, otherBody.Status);
        Assert.Equal("transaction-conflict", otherBody.Code);
        var otherTopic = await _c.Post($"/v1/topics/{topic}-2/half-messages", new { producerGroup = "order-service", transactionId = tx, body = new { orderId = 1 } });
        Assert.Equal(HttpStatusCode.Conflict, otherTopic.Status);
    }

    [Fact]
    public async Task Concurrent_retries_store_one_message_and_spare_their_neighbours()
    {
        // Duplicates landing in one group commit make the batch roll back and run again one by one;
        // the unrelated sends in that batch must still be stored exactly once.
        var topic = Unique("race");
        var tx = Unique("tx");
        var key = Unique("key");
        var halves = Enumerable.Range(0, 12).Select(_ => _c.Post($"/v1/topics/{topic}/half-messages",
            new { producerGroup = "order-service", transactionId = tx, body = new { orderId = 1 } }));
        var keyed = Enumerable.Range(0, 12).Select(_ => _c.Post($"/v1/topics/{topic}/messages", new { body = new { n = 1 } },
            new Dictionary<string, string> { ["Idempotency-Key"] = key }));
        var innocent = Enumerable.Range(0, 12).Select(i => _c.Post($"/v1/topics/{topic}/messages", new { body = new { i } }));
        var answers = await Task.WhenAll(halves.Concat(keyed).Concat(innocent));

        var halfAnswers = answers.Take(12).ToList();
        Assert.Single(halfAnswers, a => a.Status == HttpStatusCode.Created);
        Assert.All(halfAnswers, a => Assert.True(a.Status is HttpStatusCode.Created or HttpStatusCode.OK, a.ToString()));
        Assert.Single(halfAnswers.Select(a => a.Json.Str("messageId")).Distinct());
        var keyedAnswers = answers.Skip(12).Take(12).ToList();
        Assert.Single(keyedAnswers, a => a.Status == HttpStatusCode.Created);
        Assert.Single(keyedAnswers.Select(a => a.Json.Str("messageId")).Distinct());
        Assert.All(answers.Skip(24), a => Assert.Equal(HttpStatusCode.Created, a.Status));

        var topics = (await _c.Get("/v1/topics")).Json["topics"]!.AsArray();
        Assert.Equal(14, topics.Single(t => t.Str("topic") == topic)!.Int("messageCount"));
    }

    [Fact]
    public async Task Transaction_ids_and_idempotency_keys_that_differ_only_in_case_are_different()
    {
        var topic = Unique("case");
        var tx = Unique("Order");
        var upper = await _c.SendHalf(topic, tx);
        var lower = await _c.SendHalf(topic, tx.ToLowerInvariant());
        Assert.NotEqual(upper, lower);
        Assert.Equal("committed", (await _c.Post($"/v1/transactions/{tx}/commit", new { })).Json.Str("state"));
        Assert.Equal("rolledBack", (await _c.Post($"/v1/transactions/{tx.ToLowerInvariant()}/rollback", new { })).Json.Str("state"));

        var first = await _c.Post($"/v1/topics/{topic}/messages", new { body = new { n = 1 } }, new Dictionary<string, string> { ["Idempotency-Key"] = "Key-1" });
        var second = await _c.Post($"/v1/topics/{topic}/messages", new { body = new { n = 2 } }, new Dictionary<string, string> { ["Idempotency-Key"] = "key-1" });
        Assert.Equal((HttpStatusCode.Created, HttpStatusCode.Created), (first.Status, second.Status));

        // A listing waits for LiteDB to hold every journaled change: both ids must have been stored there.
        var listed = await _c.Get($"/v1/transactions?topic={topic}");
        Assert.Equal(HttpStatusCode.OK, listed.Status);
        Assert.Equal(["committed", "rolledBack"], listed.Json["transactions"]!.AsArray().Select(t => t.Str("state")).Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(HttpStatusCode.OK, (await _c.Get("/health/ready")).Status);
    }

    [Fact]
    public async Task A_retry_whose_body_is_the_same_JSON_formatted_differently_is_a_replay_not_a_conflict()
    {
        var topic = Unique("format");
        var tx = Unique("tx");
        var first = await _c.PostRaw($"/v1/topics/{topic}/half-messages", $$$"""{"producerGroup":"order-service","transactionId":"{{{tx}}}","body":{"city":"Zürich","n":1}}""");
        Assert.Equal(HttpStatusCode.Created, first.Status);
        var retry = await _c.PostRaw($"/v1/topics/{topic}/half-messages",
            $$$"""{ "producerGroup": "order-service", "transactionId": "{{{tx}}}", "body": { "city": "Z\u00fcrich", "n": 1 } }""");
        Assert.Equal(HttpStatusCode.OK, retry.Status);
        Assert.Equal(first.Json.Str("messageId"), retry.Json.Str("messageId"));

        var different = await _c.PostRaw($"/v1/topics/{topic}/half-messages", $$$"""{"producerGroup":"order-service","transactionId":"{{{tx}}}","body":{"city":"Zürich","n":2}}""");
        Assert.Equal(HttpStatusCode.Conflict, different.Status);
    }

    [Fact]
    public async Task The_broker_makes_a_transaction_id_when_none_is_given()
    {
        var answer = await _c.Post($"/v1/topics/{Unique("t")}/half-messages", new { producerGroup = "g", body = "text body" });
        Assert.Equal(HttpStatusCode.Created, answer.Status);
        var tx = answer.Json.Str("transactionId");
        Assert.False(string.IsNullOrEmpty(tx));
        Assert.Equal("prepared", (await _c.Transaction(tx)).Str("state"));
    }

    [Fact]
    public async Task Commit_and_rollback_are_idempotent_and_exclusive()
    {
        var topic = Unique("end");
        var committed = Unique("c");
        var rolledBack = Unique("r");
        await _c.SendHalf(topic, committed);
        await _c.SendHalf(topic, rolledBack);

        foreach (var _ in Enumerable.Range(0, 2))
        {
            var c = await _c.Post($"/v1/transactions/{committed}/commit");
            Assert.Equal(HttpStatusCode.OK, c.Status);
            Assert.Equal("committed", c.Json.Str("state"));
            var r = await _c.Post($"/v1/transactions/{rolledBack}/rollback");
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.Equal("rolledBack", r.Json.Str("state"));
        }

        var wrongWay = await _c.Post($"/v1/transactions/{committed}/rollback");
        Assert.Equal(HttpStatusCode.Conflict, wrongWay.Status);
        Assert.Equal("transaction-conflict", wrongWay.Code);
        Assert.Equal(HttpStatusCode.Conflict, (await _c.Post($"/v1/transactions/{rolledBack}/commit")).Status);

        var unknown = await _c.Post($"/v1/transactions/{Unique("nope")}/commit");
        Assert.Equal(HttpStatusCode.NotFound, unknown.Status);
        Assert.Equal("transaction-not-found", unknown.Code);

        var view = await _c.Transaction(committed);
        Assert.Equal("producer", view.Str("resolvedBy"));
        Assert.NotNull(view["resolvedAt"]);
        Assert.Null(view["nextCheckAt"]);
    }

    [Fact]
    public async Task Transactions_list_oldest_first_with_a_cursor_and_filters()
    {
        var topic = Unique("list");
        var ids = new List<string>();
        for (var i = 0; i < 5; i++) ids.Add(await _c.SendHalf(topic, Unique("l")));
        var tx = (await _c.Get($"/v1/transactions?topic={topic}&state=prepared&limit=3")).Json;
        var page1 = tx["transactions"]!.AsArray().Select(t => t.Str("messageId")).ToList();
        Assert.Equal(ids.Take(3), page1);
        var next = tx.Str("next");
        var page2 = (await _c.Get($"/v1/transactions?topic={topic}&state=prepared&limit=3&after={next}")).Json;
        Assert.Equal(ids.Skip(3), page2["transactions"]!.AsArray().Select(t => t.Str("messageId")));
        Assert.Null(page2["next"]);
        Assert.Empty((await _c.Get($"/v1/transactions?topic={topic}&state=committed")).Json["transactions"]!.AsArray());
    }

    [Fact]
    public async Task Producer_groups_are_created_then_replaced()
    {
        var group = Unique("pg");
        var created = await _c.Put($"/v1/producer-groups/{group}", new { checkUrl = "http://order-service:8080/halfmsg/check" });
        Assert.Equal(HttpStatusCode.Created, created.Status);
        Assert.Equal(3000, created.Json.Int("checkTimeoutMs"));
        var replaced = await _c.Put($"/v1/producer-groups/{group}", new { checkUrl = "http://other/check", checkTimeoutMs = 500 });
        Assert.Equal(HttpStatusCode.OK, replaced.Status);
        var stored = (await _c.Get($"/v1/producer-groups/{group}")).Json;
        Assert.Equal(("http://other/check", 500), (stored.Str("checkUrl"), stored.Int("checkTimeoutMs")));
        Assert.Equal("producer-group-not-found", (await _c.Get($"/v1/producer-groups/{Unique("none")}")).Code);
    }

    [Fact]
    public async Task Messages_can_be_looked_up_by_id_and_key()
    {
        var topic = Unique("look");
        var key = Unique("order");
        var id = (await _c.Post($"/v1/topics/{topic}/messages", new { body = new { a = 1 }, keys = new[] { key } })).Json.Str("messageId");
        var found = (await _c.Get($"/v1/messages?key={key}")).Json["messages"]!.AsArray();
        Assert.Equal(id, Assert.Single(found).Str("messageId"));
        var message = await _c.Message(id);
        Assert.Equal("committed", message.Str("state"));
        Assert.Equal(1, message["body"]!["a"]!.GetValue<int>());
        Assert.Equal("message-not-found", (await _c.Get($"/v1/messages/{Guid.CreateVersion7()}")).Code);
    }

    [Fact]
    public async Task Health_and_openapi_answer()
    {
        Assert.Equal(HttpStatusCode.OK, (await _c.Get("/health/live")).Status);
        Assert.Equal(HttpStatusCode.OK, (await _c.Get("/health/ready")).Status);
        var openapi = await _c.Get("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, openapi.Status);
        Assert.NotNull(openapi.Json["paths"]!["/v1/topics/{topic}/half-messages"]);
    }

    [Fact]
    public async Task Unknown_routes_answer_problem_details()
    {
        var answer = await _c.Get("/v1/nothing-here");
        Assert.Equal(HttpStatusCode.NotFound, answer.Status);
        Assert.Equal("application/problem+json", answer.ContentType);
        Assert.Equal("not-found", answer.Code);
    }
}
