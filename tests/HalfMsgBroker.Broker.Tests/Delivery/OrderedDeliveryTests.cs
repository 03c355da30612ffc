using System.Net;
using System.Text.Json.Nodes;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Delivery;

/// <summary>
/// Messages with the same ordering key reach a consumer group one at a time, in commit order, through
/// failures, concurrent consumers, push, transactions, delays and a restart; other keys flow meanwhile.
/// </summary>
public sealed class OrderedDeliveryTests : IDisposable
{
    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-ordered-tests", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_dataPath);

    private BrokerFactory Broker() => new(new Dictionary<string, string?>
    {
        ["Broker:DataPath"] = _dataPath,
        ["Broker:Delivery:RetryBackoff:0"] = "00:00:00.010",
        ["Broker:Delivery:RetryBackoff:1"] = "00:00:00.020",
    });

    /// <summary>Per key, which message is due next and whether one is handed out; every breach of order is collected.</summary>
    private sealed class OrderBook(int keys, int perKey)
    {
        private readonly int[] _next = new int[keys];
        private readonly bool[] _out = new bool[keys];
        public List<string> Violations { get; } = [];
        public bool Done { get { lock (this) return _next.All(n => n == perKey); } }

        public void HandedOut(int key, int n)
        {
            lock (this)
            {
                if (_out[key]) Violations.Add($"key {key}: message {n} handed out while another of the key was");
                if (n != _next[key]) Violations.Add($"key {key}: message {n} handed out when {_next[key]} was due");
                _out[key] = true;
            }
        }

        /// <summary>Before the broker is told: once it knows, the next of the key may be handed out at once.</summary>
        public void Finished(int key, bool acked)
        {
            lock (this)
            {
                _out[key] = false;
                if (acked) _next[key]++;
            }
        }

        public int[] Next { get { lock (this) return _next.ToArray(); } }
    }

    private static async Task SendKeyed(HttpClient c, string topic, int keys, int perKey)
    {
        var items = Enumerable.Range(0, perKey).SelectMany(n => Enumerable.Range(0, keys).Select(k =>
            (object)new { topic, body = new { k, n }, orderingKey = $"key-{k}" })).ToList();
        foreach (var batch in items.Chunk(100))
        {
            var answer = await c.Post("/v1/messages/batch", new { items = batch });
            Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
        }
    }

    [Fact]
    public async Task Ten_keys_through_four_pull_consumers_that_nack_at_random_are_acked_strictly_in_order()
    {
        const int keys = 10, perKey = 200;
        await using var broker = Broker();
        var c = broker.CreateClient();
        await c.Subscribe("ledger", "postings", new { maxAttempts = 1000 });
        await SendKeyed(c, "postings", keys, perKey);

        var book = new OrderBook(keys, perKey);
        var deadline = DateTime.UtcNow.AddMinutes(3);
        var nacks = 0;
        async Task Consume(int seed)
        {
            var random = new Random(seed);
            var client = broker.CreateClient();
            while (!book.Done && DateTime.UtcNow < deadline)
            {
                var received = await client.Receive("ledger", "postings", max: 16, wait: 1, invisible: 120);
                var acks = new List<string>();
                foreach (var m in received)
                {
                    int key = m!["body"]!.Int("k"), n = m["body"]!.Int("n");
                    book.HandedOut(key, n);
                    if (random.NextDouble() < 0.15)
                    {
                        book.Finished(key, acked: false);
                        Interlocked.Increment(ref nacks);
                        var nack = await client.Post("/v1/consumer-groups/ledger/nack", new { receiptHandle = m.Str("receiptHandle") });
                        Assert.True(nack.Status == HttpStatusCode.OK, nack.ToString());
                    }
                    else
                    {
                        book.Finished(key, acked: true);
                        acks.Add(m.Str("receiptHandle"));
                    }
                }
                if (acks.Count > 0) Assert.Equal(acks.Count, (await client.Ack("ledger", acks.ToArray())).Json.Int("acked"));
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Task.Run(() => Consume(i))));

        Assert.Empty(book.Violations);
        Assert.All(book.Next, n => Assert.Equal(perKey, n));
        Assert.True(nacks > 0);
        Assert.Empty(await c.Receive("ledger", "postings"));
    }

    [Fact]
    public async Task Pushes_of_a_key_wait_for_the_previous_one_through_random_failures()
    {
        const int keys = 5, perKey = 40;
        var book = new OrderBook(keys, perKey);
        var random = new Random(7);
        var failures = 0;
        var wrongKeys = 0;
        await using var receiver = await TestReceiver.Start((r, _) =>
        {
            int key = r.Body["body"]!.Int("k"), n = r.Body["body"]!.Int("n");
            if (r.Body.Str("orderingKey") != $"key-{key}") Interlocked.Increment(ref wrongKeys);
            book.HandedOut(key, n);
            bool fail;
            lock (random) fail = random.NextDouble() < 0.3;
            if (fail) Interlocked.Increment(ref failures);
            book.Finished(key, acked: !fail);
            return Task.FromResult((fail ? 503 : 200, (string?)null));
        });
        await using var broker = Broker();
        var c = broker.CreateClient();
        await c.Subscribe("mirror", "postings", new { maxAttempts = 1000, push = new { url = receiver.Url, timeoutMs = 5000 } });
        await SendKeyed(c, "postings", keys, perKey);

        await Eventually.Until(() => book.Done, "every key pushed through", TimeSpan.FromMinutes(2));
        Assert.Empty(book.Violations);
        Assert.True(failures > 0);
        Assert.Equal(0, Volatile.Read(ref wrongKeys)); // each push body names its ordering key
    }

    [Fact]
    public async Task Order_is_commit_order_and_holds_through_transactions_delays_and_a_nack_with_delay()
    {
        await using var broker = Broker();
        var c = broker.CreateClient();
        await c.Subscribe("ship", "parcels");
        // Born first, committed after the plain send: the plain send goes first.
        var tx = await c.SendHalf("parcels", "ordered-tx-1", new { m = "tx" }, extra: new { orderingKey = "t", checkImmunitySeconds = 600 });
        Assert.Equal("t", (await c.Message(tx)).Str("orderingKey"));
        await SendOne(c, "parcels", "plain", "t");
        Assert.Equal(HttpStatusCode.OK, (await c.Post("/v1/transactions/ordered-tx-1/commit")).Status);
        // A delayed message holds the later ones of its key.
        await c.Post("/v1/topics/parcels/messages", new { body = new { m = "delayed" }, orderingKey = "d", delaySeconds = 5 });
        await SendOne(c, "parcels", "after-delayed", "d");
        await SendOne(c, "parcels", "n1", "n");
        await SendOne(c, "parcels", "n2", "n");

        var first = await Receive(c, 2);
        Assert.Equal(["n1", "plain"], first.Keys.Order());
        var nack = await c.Post("/v1/consumer-groups/ship/nack", new { receiptHandle = first["n1"], retryAfterSeconds = 5 });
        Assert.Equal("retrying", nack.Json.Str("state"));
        await c.Ack("ship", first["plain"]);

        Assert.Equal(["tx"], (await Receive(c, 1)).Keys);
        // n2 waits for n1's retry; "after-delayed" for "delayed".
        var later = await Receive(c, 2, wait: 3);
        Assert.Equal(["delayed", "n1"], later.Keys.Order());
        Assert.Empty(await c.Receive("ship", "parcels", wait: 0));
        await c.Ack("ship", later.Values.ToArray());
        Assert.Equal(["after-delayed", "n2"], (await Receive(c, 2)).Keys.Order());
    }

    [Fact]
    public async Task A_restart_restores_each_keys_commit_order()
    {
        await using (var before = Broker())
        {
            var c = before.CreateClient();
            await c.Subscribe("ship", "parcels");
            await c.SendHalf("parcels", "ordered-tx-2", new { m = "a-tx" }, extra: new { orderingKey = "a", checkImmunitySeconds = 600 });
            await SendOne(c, "parcels", "a1", "a");
            await SendOne(c, "parcels", "a2", "a");
            Assert.Equal(HttpStatusCode.OK, (await c.Post("/v1/transactions/ordered-tx-2/commit")).Status);
            foreach (var b in new[] { "b1", "b2", "b3" }) await SendOne(c, "parcels", b, "b");
            // A short lease: a restart forgets it, and with many active brokers (its lease a row) it runs out soon after.
            var handedOut = await Receive(c, 2, invisible: 2);
            Assert.Equal(["a1", "b1"], handedOut.Keys.Order());
            await c.Ack("ship", handedOut["b1"]); // a1 stays in flight through the restart
            await SendOne(c, "parcels", "unkeyed", null);
        }

        await using var after = Broker();
        var client = after.CreateClient();
        var got = new List<string[]>();
        for (var round = 0; round < 3; round++)
        {
            var batch = await Receive(client, round switch { 0 => 3, 1 => 2, _ => 1 });
            got.Add(batch.Keys.Order().ToArray());
            await client.Ack("ship", batch.Values.ToArray());
        }
        Assert.Equal(["a1", "b2", "unkeyed"], got[0]);
        Assert.Equal(["a2", "b3"], got[1]);
        Assert.Equal(["a-tx"], got[2]);
        Assert.Empty(await client.Receive("ship", "parcels", wait: 1));
    }

    [Fact]
    public async Task A_redriven_dead_letter_takes_its_commit_place_behind_the_message_handed_out()
    {
        await using var broker = Broker();
        var c = broker.CreateClient();
        await c.Subscribe("ship", "parcels", new { maxAttempts = 1 });
        foreach (var m in new[] { "m1", "m2", "m3" }) await SendOne(c, "parcels", m, "k");

        var first = await Receive(c, 1);
        Assert.Equal("deadLettered", (await c.Post("/v1/consumer-groups/ship/nack", new { receiptHandle = first["m1"] })).Json.Str("state"));
        var second = await Receive(c, 1); // the dead letter let the key go on
        Assert.Equal(["m2"], second.Keys);

        var dead = (await c.Get("/v1/consumer-groups/ship/dead-letters")).Json["deadLetters"]!.AsArray();
        Assert.Equal(1, (await c.Post("/v1/consumer-groups/ship/dead-letters/redrive", new { messageIds = new[] { Assert.Single(dead)!.Str("messageId") } })).Json.Int("redriven"));
        Assert.Empty(await c.Receive("ship", "parcels", wait: 0)); // m2 is still out
        await c.Ack("ship", second["m2"]);
        Assert.Equal(["m1"], (await Receive(c, 1)).Keys); // before m3: its commit came first
    }

    private static async Task SendOne(HttpClient c, string topic, string m, string? key)
    {
        var answer = await c.Post($"/v1/topics/{topic}/messages", new { body = new { m }, orderingKey = key });
        Assert.True(answer.Status == HttpStatusCode.Created, answer.ToString());
    }

    /// <summary>Receives until <paramref name="count"/> messages came (then a moment more, to catch any extra): name → receipt handle.</summary>
    private static async Task<Dictionary<string, string>> Receive(HttpClient c, int count, int wait = 1, int invisible = 30)
    {
        var got = new Dictionary<string, string>();
        await Eventually.Until(async () =>
        {
            foreach (var m in await c.Receive("ship", "parcels", wait: wait, invisible: invisible)) got.Add(m!["body"]!.Str("m"), m.Str("receiptHandle"));
            return got.Count;
        }, n => n >= count, $"{count} messages");
        foreach (var m in await c.Receive("ship", "parcels", wait: 0, invisible: invisible)) got.Add(m!["body"]!.Str("m"), m.Str("receiptHandle"));
        return got;
    }
}
