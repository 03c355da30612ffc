using System.Net;
using System.Text;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Access;

/// <summary>Keys and state for the matrix: two producers, two consumers, the admin key, and no key.</summary>
public sealed class MatrixFixture : IAsyncLifetime
{
    public BrokerFactory Factory { get; } = new();
    public Dictionary<string, HttpClient> Clients { get; } = new(StringComparer.Ordinal);
    public string MessageId { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var admin = Factory.CreateClient();
        Clients["admin"] = admin;
        Clients["none"] = Factory.CreateAnonymousClient();
        Clients["bogus"] = Factory.CreateClient("hmb_not-a-key-anyone-issued-0000000000000000");
        Clients["prod"] = Factory.CreateClient((await Keys.Create(admin, "orders-producer", "producer", ["order-service"], null, ["orders", "orders.*"])).Key);
        Clients["prod2"] = Factory.CreateClient((await Keys.Create(admin, "billing-producer", "producer", ["billing"], null, ["bills"])).Key);
        Clients["cons"] = Factory.CreateClient((await Keys.Create(admin, "inventory-consumer", "consumer", null, ["inventory"])).Key);
        Clients["cons2"] = Factory.CreateClient((await Keys.Create(admin, "shipping-consumer", "consumer", null, ["shipping*"])).Key);

        await Clients["cons"].Subscribe("inventory", "orders");
        Assert.Equal(HttpStatusCode.Created, (await Clients["prod"].Put("/v1/producer-groups/order-service", new { })).Status);
        await Clients["prod"].SendHalf("orders", "tx-matrix");
        await Clients["prod"].SendHalf("orders", "tx-done");
        Assert.Equal(HttpStatusCode.OK, (await Clients["prod"].Post("/v1/transactions/tx-done/commit")).Status);
        var sent = await Clients["prod"].Post("/v1/topics/orders/messages", new { body = new { n = 1 }, keys = new[] { "matrix-key" } });
        MessageId = sent.Json.Str("messageId");
    }

    public async Task DisposeAsync()
    {
        foreach (var c in Clients.Values) c.Dispose();
        await Factory.DisposeAsync();
    }
}

/// <summary>The contract's access table, row by row: who may do what, and what everyone else is told.</summary>
public sealed class RoleMatrixTests(MatrixFixture f) : IClassFixture<MatrixFixture>
{
    private const string Json1 = """{"body":1}""";
    private const string HalfOrderService = """{"producerGroup":"order-service","body":1}""";
    private const string HalfBilling = """{"producerGroup":"billing","body":1}""";
    private const string Receive = """{"waitSeconds":0}""";

    public static TheoryData<string, string, string, string?, int> Rows => new()
    {
        // send a plain or half message to topic T: T in topics
        { "prod", "POST", "/v1/topics/orders/messages", Json1, 201 },
        { "prod", "POST", "/v1/topics/orders.eu/messages", Json1, 201 },
        { "prod", "POST", "/v1/topics/bills/messages", Json1, 403 },
        { "prod2", "POST", "/v1/topics/bills/messages", Json1, 201 },
        { "cons", "POST", "/v1/topics/orders/messages", Json1, 403 },
        { "admin", "POST", "/v1/topics/anything/messages", Json1, 201 },
        { "prod", "POST", "/v1/topics/orders/half-messages", HalfOrderService, 201 },
        { "prod", "POST", "/v1/topics/orders/half-messages", HalfBilling, 403 },
        { "prod2", "POST", "/v1/topics/orders/half-messages", HalfBilling, 403 },
        { "cons", "POST", "/v1/topics/orders/half-messages", HalfOrderService, 403 },
        // commit, rollback, read a transaction of producer group P: P in producerGroups (others are told nothing)
        { "prod", "GET", "/v1/transactions/tx-matrix", null, 200 },
        { "admin", "GET", "/v1/transactions/tx-matrix", null, 200 },
        { "prod2", "GET", "/v1/transactions/tx-matrix", null, 404 },
        { "prod2", "POST", "/v1/transactions/tx-matrix/commit", null, 404 },
        { "prod2", "POST", "/v1/transactions/tx-matrix/rollback", null, 404 },
        { "cons", "GET", "/v1/transactions/tx-matrix", null, 403 },
        { "cons", "POST", "/v1/transactions/tx-matrix/commit", null, 403 },
        { "prod", "POST", "/v1/transactions/tx-done/commit", null, 200 },
        { "prod", "POST", "/v1/transactions/tx-done/rollback", null, 409 },
        { "prod", "POST", "/v1/transactions/no-such-tx/commit", null, 404 },
        // list transactions: only its producer groups' (content checked below)
        { "prod", "GET", "/v1/transactions?state=prepared", null, 200 },
        { "prod2", "GET", "/v1/transactions", null, 200 },
        { "cons", "GET", "/v1/transactions", null, 403 },
        // PUT/GET producer group P: P in producerGroups
        { "prod", "PUT", "/v1/producer-groups/order-service", "{}", 200 },
        { "prod", "GET", "/v1/producer-groups/order-service", null, 200 },
        { "prod", "PUT", "/v1/producer-groups/billing", "{}", 403 },
        { "prod2", "GET", "/v1/producer-groups/order-service", null, 403 },
        { "cons", "PUT", "/v1/producer-groups/order-service", "{}", 403 },
        // subscriptions, receive, ack, nack, change-invisibility, dead letters of consumer group G: G in consumerGroups
        { "cons", "PUT", "/v1/consumer-groups/inventory/subscriptions/orders", "{}", 200 },
        { "cons", "GET", "/v1/consumer-groups/inventory", null, 200 },
        { "cons", "POST", "/v1/consumer-groups/inventory/topics/orders/receive", Receive, 200 },
        { "cons", "POST", "/v1/consumer-groups/inventory/ack", """{"receiptHandles":["x"]}""", 400 },
        { "cons", "POST", "/v1/consumer-groups/inventory/nack", """{"receiptHandle":"x"}""", 400 },
        { "cons", "POST", "/v1/consumer-groups/inventory/change-invisibility", """{"receiptHandle":"x","invisibleSeconds":5}""", 400 },
        { "cons", "GET", "/v1/consumer-groups/inventory/dead-letters", null, 200 },
        { "cons", "POST", "/v1/consumer-groups/inventory/dead-letters/redrive", "{}", 200 },
        { "cons", "DELETE", "/v1/consumer-groups/inventory/dead-letters/0190c6a8-0000-7000-8000-000000000000", null, 404 },
        { "cons", "DELETE", "/v1/consumer-groups/inventory/subscriptions/nothing", null, 404 },
        { "cons2", "POST", "/v1/consumer-groups/shipping-eu/topics/orders/receive", Receive, 404 },
        { "cons2", "GET", "/v1/consumer-groups/inventory", null, 403 },
        { "cons2", "POST", "/v1/consumer-groups/inventory/topics/orders/receive", Receive, 403 },
        { "cons2", "POST", "/v1/consumer-groups/inventory/ack", """{"receiptHandles":["x"]}""", 403 },
        { "cons2", "PUT", "/v1/consumer-groups/inventory/subscriptions/orders", "{}", 403 },
        { "cons2", "DELETE", "/v1/consumer-groups/inventory/subscriptions/orders", null, 403 },
        { "prod", "GET", "/v1/consumer-groups/inventory", null, 403 },
        { "prod", "POST", "/v1/consumer-groups/inventory/topics/orders/receive", Receive, 403 },
        { "prod", "GET", "/v1/consumer-groups/inventory/dead-letters", null, 403 },
        { "prod", "POST", "/v1/consumer-groups/inventory/dead-letters/redrive", "{}", 403 },
        // read a message: producers on its topics, consumers on a topic their groups subscribe to
        { "prod", "GET", "/v1/messages/{msg}", null, 200 },
        { "prod2", "GET", "/v1/messages/{msg}", null, 404 },
        { "cons", "GET", "/v1/messages/{msg}", null, 200 },
        { "cons2", "GET", "/v1/messages/{msg}", null, 404 },
        { "prod", "GET", "/v1/messages?key=matrix-key", null, 200 },
        // a request no row covers: admin only
        { "prod", "GET", "/v1/topics", null, 403 },
        { "cons", "GET", "/v1/topics", null, 403 },
        { "admin", "GET", "/v1/topics", null, 200 },
        { "prod", "GET", "/v1/api-keys", null, 403 },
        { "cons", "POST", "/v1/api-keys", """{"name":"x","role":"admin"}""", 403 },
        { "admin", "GET", "/v1/api-keys", null, 200 },
        { "prod", "GET", "/v1/audit", null, 403 },
        { "admin", "GET", "/v1/audit", null, 200 },
        // a missing or unknown key
        { "none", "GET", "/v1/topics", null, 401 },
        { "none", "POST", "/v1/topics/orders/messages", Json1, 401 },
        { "none", "GET", "/v1/transactions/tx-matrix", null, 401 },
        { "bogus", "GET", "/v1/consumer-groups/inventory", null, 401 },
        { "bogus", "POST", "/v1/transactions/tx-matrix/commit", null, 401 },
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public async Task Role_matrix(string who, string method, string path, string? body, int expected)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path.Replace("{msg}", f.MessageId, StringComparison.Ordinal));
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await f.Clients[who].SendAsync(request);
        var raw = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expected, $"{who} {method} {path}: expected {expected}, got {(int)response.StatusCode} {raw}");
        if (expected == 401)
        {
            Assert.Contains("unauthenticated", raw, StringComparison.Ordinal);
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
        }
        if (expected == 403) Assert.Contains("\"code\":\"forbidden\"", raw, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_403_names_what_is_missing()
    {
        var answer = await f.Clients["prod"].Post("/v1/topics/bills/messages", new { body = 1 });
        Assert.Equal(HttpStatusCode.Forbidden, answer.Status);
        Assert.Contains("topic 'bills'", answer.Json.Str("detail"), StringComparison.Ordinal);
        Assert.Contains("orders-producer", answer.Json.Str("detail"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Transaction_listings_hold_only_the_keys_own_producer_groups()
    {
        await f.Clients["prod2"].SendHalf("bills", "tx-bill-listed", group: "billing");
        var mine = await f.Clients["prod"].Get("/v1/transactions?limit=1000");
        var theirs = await f.Clients["prod2"].Get("/v1/transactions?limit=1000");
        var all = await f.Clients["admin"].Get("/v1/transactions?limit=1000");
        static List<string> Groups(Http.Answer a) => a.Json["transactions"]!.AsArray().Select(t => t.Str("producerGroup")).Distinct().ToList();
        Assert.Equal(["order-service"], Groups(mine));
        Assert.Equal(["billing"], Groups(theirs));
        Assert.Contains("billing", Groups(all));
        Assert.Contains("order-service", Groups(all));
    }

    [Fact]
    public async Task Another_group_reusing_a_transaction_id_learns_nothing_about_the_first()
    {
        // Same topic, same body, same id, another producer group: not a replay of the other's message.
        var mine = await f.Clients["admin"].Post("/v1/topics/orders/half-messages", new { producerGroup = "order-service", transactionId = "tx-secret", body = new { a = 1 } });
        Assert.Equal(HttpStatusCode.Created, mine.Status);
        var theirs = await f.Clients["admin"].Post("/v1/topics/orders/half-messages", new { producerGroup = "billing", transactionId = "tx-secret", body = new { a = 1 } });
        Assert.Equal(HttpStatusCode.Conflict, theirs.Status);
        Assert.DoesNotContain(mine.Json.Str("messageId"), theirs.Raw, StringComparison.Ordinal);
        Assert.DoesNotContain("'orders'", theirs.Raw, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_consumer_sees_its_own_groups_deliveries_only()
    {
        var admin = f.Clients["admin"];
        await admin.Subscribe("inventory", "orders.ship");
        await admin.Subscribe("shipping-eu", "orders.ship");
        var id = await f.Clients["prod"].Send("orders.ship");
        var view = await f.Clients["cons"].Get($"/v1/messages/{id}");
        Assert.Equal(HttpStatusCode.OK, view.Status);
        Assert.Equal(["inventory"], view.Json["deliveries"]!.AsArray().Select(d => d.Str("consumerGroup")).ToList());
        var all = await admin.Get($"/v1/messages/{id}");
        Assert.Equal(2, all.Json["deliveries"]!.AsArray().Count);
    }
}
