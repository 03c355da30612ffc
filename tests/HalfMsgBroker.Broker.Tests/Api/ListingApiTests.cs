using System.Net;
using System.Text.Json.Nodes;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Api;

/// <summary>Listings answer a page and a <c>next</c> cursor; following it walks them all, and the last page says so.</summary>
public sealed class ListingApiTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    private readonly HttpClient _c = broker.Client;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Follows <c>next</c> from the first page to the last, collecting what <paramref name="items"/> names.</summary>
    private async Task<List<List<string>>> Pages(string url, string items, string id)
    {
        var pages = new List<List<string>>();
        string? next = null;
        do
        {
            var answer = await _c.Get(next is null ? url : $"{url}&after={next}");
            Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
            pages.Add(answer.Json[items]!.AsArray().Select(i => i.Str(id)).ToList());
            next = answer.Json["next"]?.GetValue<string>();
            Assert.True(pages.Count < 10, "next should run out");
        }
        while (next is not null);
        return pages;
    }

    private async Task<string> DeadLetter(string group, string topic)
    {
        var id = await _c.Send(topic);
        var m = Assert.Single(await Eventually.Until(() => _c.Receive(group, topic), r => r.Count == 1, "the delivery"))!;
        await _c.Post($"/v1/consumer-groups/{group}/nack", new { receiptHandle = m.Str("receiptHandle"), retryAfterSeconds = 0 });
        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "deadLettered", "dead letter");
        return id;
    }

    [Fact]
    public async Task Dead_letters_page_with_a_next_cursor_and_count_per_topic()
    {
        var (group, topic, other) = (Unique("g"), Unique("t"), Unique("t"));
        await _c.Subscribe(group, topic, new { maxAttempts = 1 });
        await _c.Subscribe(group, other, new { maxAttempts = 1 });
        var ids = new List<string>();
        for (var i = 0; i < 3; i++) ids.Add(await DeadLetter(group, topic));
        var elsewhere = await DeadLetter(group, other);

        Assert.Equal([ids[..2], [ids[2], elsewhere]], await Pages($"/v1/consumer-groups/{group}/dead-letters?limit=2", "deadLetters", "messageId"));
        Assert.Equal([ids[..2], [ids[2]]], await Pages($"/v1/consumer-groups/{group}/dead-letters?topic={topic}&limit=2", "deadLetters", "messageId"));
        var all = await _c.Get($"/v1/consumer-groups/{group}/dead-letters");
        Assert.Null(all.Json["next"]);
        Assert.Equal(4, all.Json["deadLetters"]!.AsArray().Count);

        var counts = (await _c.Get($"/v1/consumer-groups/{group}")).Json["subscriptions"]!.AsArray()
            .ToDictionary(s => s.Str("topic"), s => s!["counts"].Int("deadLettered"));
        Assert.Equal(3, counts[topic]);
        Assert.Equal(1, counts[other]);

        var bad = await _c.Get($"/v1/consumer-groups/{group}/dead-letters?after=not-a-cursor");
        Assert.Equal(HttpStatusCode.BadRequest, bad.Status);
        Assert.Equal("invalid-field", bad.Code);
        Assert.NotNull(bad.Json["errors"]!["after"]);
    }

    [Fact]
    public async Task Redrive_and_delete_of_all_dead_letters_reach_every_one()
    {
        var (group, topic, other) = (Unique("g"), Unique("t"), Unique("t"));
        await _c.Subscribe(group, topic, new { maxAttempts = 1 });
        await _c.Subscribe(group, other, new { maxAttempts = 1 });
        await DeadLetter(group, topic);
        await DeadLetter(group, topic);
        var kept = await DeadLetter(group, other);

        Assert.Equal(2, (await _c.Delete($"/v1/consumer-groups/{group}/dead-letters?topic={topic}")).Json.Int("deleted"));
        var left = (await _c.Get($"/v1/consumer-groups/{group}/dead-letters")).Json["deadLetters"]!.AsArray();
        Assert.Equal(kept, Assert.Single(left).Str("messageId"));
        Assert.Equal(1, (await _c.Post($"/v1/consumer-groups/{group}/dead-letters/redrive", new { })).Json.Int("redriven"));
        Assert.Empty((await _c.Get($"/v1/consumer-groups/{group}/dead-letters")).Json["deadLetters"]!.AsArray());
    }

    [Fact]
    public async Task Messages_found_by_key_page_with_a_next_cursor_and_a_topic_filter()
    {
        var (key, topic, other) = (Unique("order"), Unique("t"), Unique("t"));
        var ids = new List<string>();
        foreach (var t in new[] { topic, other, topic })
        {
            var sent = await _c.Post($"/v1/topics/{t}/messages", new { body = new { n = 1 }, keys = new[] { key } });
            Assert.Equal(HttpStatusCode.Created, sent.Status);
            ids.Add(sent.Json.Str("messageId"));
        }
        await _c.Post($"/v1/topics/{topic}/messages", new { body = new { n = 1 }, keys = new[] { key + "0" } });

        Assert.Equal([ids[..2], [ids[2]]], await Pages($"/v1/messages?key={key}&limit=2", "messages", "messageId"));
        Assert.Equal([[ids[0]], [ids[2]]], await Pages($"/v1/messages?key={key}&topic={topic}&limit=1", "messages", "messageId"));
        Assert.Equal("invalid-field", (await _c.Get($"/v1/messages?key={key}&after=nope")).Code);
    }

    [Fact]
    public async Task Transactions_page_in_id_order_and_the_last_page_has_no_next()
    {
        var (producers, topic) = (Unique("pg"), Unique("t"));
        var ids = new List<string>();
        for (var i = 0; i < 3; i++) ids.Add(await _c.SendHalf(topic, Unique("tx"), group: producers));

        Assert.Equal([ids[..2], [ids[2]]], await Pages($"/v1/transactions?producerGroup={producers}&limit=2", "transactions", "messageId"));
        Assert.Equal([ids], await Pages($"/v1/transactions?producerGroup={producers}&topic={topic}&limit=3", "transactions", "messageId"));
        var none = await _c.Get($"/v1/transactions?producerGroup={producers}&topic={Unique("t")}");
        Assert.Empty(none.Json["transactions"]!.AsArray());
        Assert.Null(none.Json["next"]);
    }
}
