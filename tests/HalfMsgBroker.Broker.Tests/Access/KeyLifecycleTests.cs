using System.Net;
using System.Text;
using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Tests.Access;

/// <summary>Keys are shown once, stored as hashes, survive restarts, stop working when revoked, and never reach a log.</summary>
public sealed class KeyLifecycleTests
{
    [Fact]
    public async Task A_key_is_shown_once_and_stored_only_as_a_hash()
    {
        var dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-tests", Guid.NewGuid().ToString("N"));
        var broker = new BrokerFactory(new Dictionary<string, string?> { ["Broker:DataPath"] = dataPath });
        using var admin = broker.CreateClient();
        var created = await admin.Post("/v1/api-keys", new { name = "order-service", role = "producer", producerGroups = new[] { "order-service" }, topics = new[] { "orders", "orders.*" } });
        Assert.Equal(HttpStatusCode.Created, created.Status);
        var key = created.Json.Str("key");
        Assert.StartsWith("hmb_", key, StringComparison.Ordinal);
        Assert.True(key.Length >= 4 + 43, "256 random bits, base64url");
        Assert.Equal("producer", created.Json.Str("role"));
        Assert.Equal(["orders", "orders.*"], created.Json["topics"]!.AsArray().Select(t => t!.GetValue<string>()).ToList());

        var list = await admin.Get("/v1/api-keys");
        var listed = Assert.Single(list.Json["apiKeys"]!.AsArray());
        Assert.Equal(created.Json.Str("id"), listed.Str("id"));
        Assert.Null(listed!["key"]);
        Assert.DoesNotContain(key, list.Raw, StringComparison.Ordinal);

        await broker.DisposeAsync();
        if (TestStorage.IsPostgreSql)
        {
            // Every stored byte of the access tables, keys and audit trail alike.
            var stored = await TestStorage.ReadAllAsync(dataPath, "SELECT doc FROM halfmsg_api_keys",
                "SELECT convert_to(actor || action || target || coalesce(detail, ''), 'UTF8') FROM halfmsg_audit");
            Assert.NotEmpty(stored);
            Assert.All(stored, bytes => Assert.False(Contains(bytes, Encoding.UTF8.GetBytes(key)), "PostgreSQL holds the key itself"));
            TestStorage.Drop(dataPath);
            return;
        }
        // A cleanly closed LiteDB file has copied its log in and deleted it: wait for that, then read what stays.
        var files = await Eventually.Until(
            () => Task.FromResult(Directory.GetFiles(dataPath, "*", SearchOption.AllDirectories)),
            f => !f.Any(name => name.EndsWith("-log.db", StringComparison.Ordinal)), "LiteDB files closed");
        Assert.Contains(files, f => f.EndsWith("access.db", StringComparison.Ordinal));
        foreach (var file in files.Where(f => !f.EndsWith("broker.lock", StringComparison.Ordinal)))
        {
            var bytes = await File.ReadAllBytesAsync(file);
            Assert.False(Contains(bytes, Encoding.UTF8.GetBytes(key)), $"{file} holds the key itself");
        }
        BrokerFactory.TryDelete(dataPath);
    }

    [Fact]
    public async Task Keys_survive_a_restart_and_a_revoked_key_is_refused_at_once()
    {
        var dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-tests", Guid.NewGuid().ToString("N"));
        string id, key;
        await using (var first = new BrokerFactory(new Dictionary<string, string?> { ["Broker:DataPath"] = dataPath }))
        {
            (id, key) = await Keys.Create(first.CreateClient(), "inventory", "consumer", consumerGroups: ["inventory"]);
            using var consumer = first.CreateClient(key);
            Assert.Equal(HttpStatusCode.Created, (await consumer.Put("/v1/consumer-groups/inventory/subscriptions/orders", new { })).Status);
        }

        await using (var second = new BrokerFactory(new Dictionary<string, string?> { ["Broker:DataPath"] = dataPath }))
        {
            await RevokeAfterRestart(second, id, key);
        }
        BrokerFactory.TryDelete(dataPath);
    }

    private static async Task RevokeAfterRestart(BrokerFactory second, string id, string key)
    {
        using var admin = second.CreateClient();
        using var again = second.CreateClient(key);
        Assert.Equal(HttpStatusCode.OK, (await again.Get("/v1/consumer-groups/inventory")).Status);

        Assert.Equal(HttpStatusCode.NoContent, (await admin.Delete($"/v1/api-keys/{id}")).Status);
        var refused = await again.Get("/v1/consumer-groups/inventory");
        Assert.Equal(HttpStatusCode.Unauthorized, refused.Status);
        Assert.Equal("unauthenticated", refused.Code);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.Delete($"/v1/api-keys/{id}")).Status);
        Assert.Empty((await admin.Get("/v1/api-keys")).Json["apiKeys"]!.AsArray());
    }

    [Fact]
    public async Task Last_use_is_recorded_in_batches()
    {
        await using var broker = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Auth:LastUsedFlushInterval"] = "00:00:00.100" });
        using var admin = broker.CreateClient();
        var (id, key) = await Keys.Create(admin, "reader", "producer", topics: ["t"]);
        Assert.Null((await admin.Get("/v1/api-keys")).Json["apiKeys"]!.AsArray().Single()!["lastUsedAt"]?.GetValue<DateTime?>());
        using var producer = broker.CreateClient(key);
        for (var i = 0; i < 5; i++) await producer.Send("t");

        var used = await Eventually.Until(
            async () => (await admin.Get("/v1/api-keys")).Json["apiKeys"]!.AsArray().Single(k => k.Str("id") == id)!["lastUsedAt"]?.GetValue<DateTime?>(),
            at => at is not null, "lastUsedAt recorded");
        Assert.InRange(used!.Value, DateTime.UtcNow.AddMinutes(-1), DateTime.UtcNow.AddMinutes(1));
    }

    [Theory]
    [InlineData("""{"name":"x"}""", "role")]
    [InlineData("""{"name":"x","role":"root"}""", "role")]
    [InlineData("""{"name":"has space","role":"producer"}""", "name")]
    [InlineData("""{"name":"x","role":"producer","topics":["bad topic"]}""", "topics[0]")]
    [InlineData("""{"name":"x","role":"producer","topics":["or*ders"]}""", "topics[0]")]
    [InlineData("""{"name":"x","role":"consumer","producerGroups":["a"]}""", "producerGroups")]
    [InlineData("""{"name":"x","role":"producer","consumerGroups":["a"]}""", "consumerGroups")]
    public async Task A_bad_key_request_is_a_400_naming_the_field_and_creates_nothing(string body, string field)
    {
        await using var broker = new BrokerFactory();
        using var admin = broker.CreateClient();
        var answer = await admin.PostRaw("/v1/api-keys", body);
        Assert.Equal(HttpStatusCode.BadRequest, answer.Status);
        Assert.NotNull(answer.Json["errors"]![field]);
        Assert.Empty((await admin.Get("/v1/api-keys")).Json["apiKeys"]!.AsArray());
    }

    [Fact]
    public async Task Keys_never_appear_in_the_log()
    {
        var log = new CapturingLoggerProvider();
        await using var broker = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Trace",
            ["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace",
        });
        var factory = broker.WithWebHostBuilder(b => b.ConfigureServices(s => s.AddLogging(l => l.AddProvider(log).SetMinimumLevel(LogLevel.Trace))));
        using var admin = factory.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new("Bearer", BrokerFactory.AdminKey);
        var (id, key) = await Keys.Create(admin, "p", "producer", ["g"], null, ["t"]);
        using var producer = factory.CreateClient();
        producer.DefaultRequestHeaders.Authorization = new("Bearer", key);
        await producer.Send("t");
        Assert.Equal(HttpStatusCode.Forbidden, (await producer.Get("/v1/topics")).Status);
        await admin.Delete($"/v1/api-keys/{id}");
        Assert.Equal(HttpStatusCode.Unauthorized, (await producer.Get("/v1/topics")).Status);
        using var wrong = factory.CreateClient();
        wrong.DefaultRequestHeaders.Authorization = new("Bearer", key + "x");
        Assert.Equal(HttpStatusCode.Unauthorized, (await wrong.Get("/v1/topics")).Status);

        var lines = log.Lines;
        Assert.True(lines.Count > 10, "the capture saw the broker's log");
        Assert.DoesNotContain(lines, l => l.Contains(key, StringComparison.Ordinal) || l.Contains(key[4..20], StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains(BrokerFactory.AdminKey, StringComparison.Ordinal));
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
