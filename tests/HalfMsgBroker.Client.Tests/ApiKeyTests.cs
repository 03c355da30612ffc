using System.Net;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Client.Tests;

/// <summary><see cref="HalfMsgClientOptions.ApiKey"/> on the wire, in configuration, in ToString, and 401/403 answers.</summary>
public sealed class ApiKeyTests
{
    private const string Key = "hmb-test-key-7c1e94b2d05f4a6e8b3d2f10";

    /// <summary>Fits every answer type the SDK reads: each type takes the fields it knows.</summary>
    private const string AnyAnswer = """
        {"messageId":"m-1","transactionId":"t-1","state":"committed","messages":[],"acked":0,"stale":[],
         "deleted":0,"producerGroup":"g","checkTimeoutMs":3000,"consumerGroup":"g","topic":"t","tagFilter":"*",
         "receiptHandle":"h","visibleAt":"2030-01-01T00:00:00Z","topics":[]}
        """;

    private static Task AnswerOk(HttpContext context)
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(AnyAnswer);
    }

    private static ServiceProvider Client(Uri broker, string? apiKey)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = broker;
            o.ApiKey = apiKey;
            o.RetryDelay = TimeSpan.FromMilliseconds(1);
        });
        return services.BuildServiceProvider();
    }

    [Fact]
    public void ToString_shows_whether_a_key_is_set_but_never_the_key_nor_the_signing_secrets()
    {
        var options = new HalfMsgClientOptions { BaseAddress = new Uri("http://127.0.0.1:8080"), ApiKey = Key, SigningSecrets = ["sig-secret-4711"] };

        foreach (var text in new[] { options.ToString(), $"{options with { UseHttp2 = true }}" })
        {
            Assert.DoesNotContain(Key, text, StringComparison.Ordinal);
            Assert.DoesNotContain("sig-secret-4711", text, StringComparison.Ordinal);
            Assert.Contains("ApiKey = (set)", text, StringComparison.Ordinal);
            Assert.Contains("SigningSecrets = (1 hidden)", text, StringComparison.Ordinal);
            Assert.Contains("BaseAddress = http://127.0.0.1:8080/", text, StringComparison.Ordinal);
        }

        // The hand-written PrintMembers must keep up with the properties: every one is listed.
        foreach (var property in typeof(HalfMsgClientOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            Assert.Contains(property.Name + " = ", options.ToString(), StringComparison.Ordinal);
        }

        Assert.Contains("ApiKey = (none)", new HalfMsgClientOptions().ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ApiKey_binds_from_configuration_and_reaches_the_wire()
    {
        await using var listener = await RecordingListener.StartAsync(AnswerOk);
        // HalfMsg:ApiKey is what the environment variable HalfMsg__ApiKey or a user secret sets.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["HalfMsg:BaseAddress"] = listener.BaseAddress.ToString(),
            ["HalfMsg:ApiKey"] = Key,
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHalfMsgClient(o => configuration.GetSection("HalfMsg").Bind(o));
        await using var provider = services.BuildServiceProvider();

        Assert.Equal(Key, provider.GetRequiredService<IOptions<HalfMsgClientOptions>>().Value.ApiKey);
        await provider.GetRequiredService<HalfMsgClient>().Api.GetTopicsAsync();
        Assert.Equal("Bearer " + Key, Assert.Single(listener.Requests).Header("Authorization"));
    }

    [Theory]
    [InlineData(Key + "\n")]
    [InlineData("hmb key with spaces")]
    public async Task A_malformed_key_is_refused_at_start_without_being_shown(string malformed)
    {
        await using var provider = Client(new Uri("http://127.0.0.1:1"), malformed);

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<HalfMsgClient>());

        Assert.Contains("HalfMsgClientOptions.ApiKey", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(malformed.Trim(), ex.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Every_call_carries_the_key_and_every_state_changing_call_a_JSON_content_type(bool withKey)
    {
        await using var listener = await RecordingListener.StartAsync(AnswerOk);
        await using var provider = Client(listener.BaseAddress, withKey ? Key : null);
        var client = provider.GetRequiredService<HalfMsgClient>();
        var api = client.Api;

        await client.SendAsync("orders", new Order("o-1", 1));
        await client.SendHalfAsync("orders", "order-service", new Order("o-2", 1));
        await client.CommitAsync("t-1");
        await client.RollbackAsync("t-2");
        await api.PutProducerGroupAsync("order-service", new ProducerGroupRequest(new Uri("http://127.0.0.1:9/check")));
        await api.PutSubscriptionAsync("stock", "orders", new SubscriptionRequest());
        await api.ReceiveAsync("stock", "orders", new ReceiveRequest(1, 0, 30));
        await api.AckAsync("stock", new AckRequest(["h"]));
        await api.NackAsync("stock", new NackRequest("h"));
        await api.ChangeInvisibilityAsync("stock", new ChangeInvisibilityRequest("h", 30));
        await api.RedriveDeadLettersAsync("stock", new RedriveRequest(null));
        await api.DeleteDeadLetterAsync("stock", "m-1");
        await api.DeleteDeadLettersAsync("stock", "orders");
        await api.DeleteSubscriptionAsync("stock", "orders");
        await api.GetTopicsAsync();
        using (await api.GetLivenessAsync())
        {
        }

        var requests = listener.Requests.ToList();
        Assert.Equal(16, requests.Count);
        Assert.All(requests, r => Assert.Equal(withKey ? "Bearer " + Key : null, r.Header("Authorization")));

        var changing = requests.Where(r => r.Method is "POST" or "PUT" or "DELETE").ToList();
        Assert.Equal(14, changing.Count);
        Assert.All(changing, r =>
        {
            Assert.StartsWith("application/json", r.Header("Content-Type"), StringComparison.Ordinal);
            using var _ = JsonDocument.Parse(r.Body); // a JSON body, never an empty one
        });

        var bodyless = changing.Where(r => r.Path.EndsWith("/commit", StringComparison.Ordinal)
            || r.Path.EndsWith("/rollback", StringComparison.Ordinal)
            || r.Method == "DELETE").ToList();
        Assert.Equal(5, bodyless.Count);
        Assert.All(bodyless, r => Assert.Equal("{}", r.Body));
    }

    [Fact]
    public async Task Unauthenticated_and_forbidden_answers_fail_clearly_and_are_not_retried()
    {
        await using var listener = await RecordingListener.StartAsync(context =>
        {
            var path = context.Request.Path.Value ?? string.Empty;
            if (path.EndsWith("/commit", StringComparison.Ordinal))
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                context.Response.Headers.WWWAuthenticate = "Bearer";
                context.Response.ContentType = "application/problem+json";
                return context.Response.WriteAsync("""{"type":"https://halfmsgbroker.dev/problems/unauthenticated","title":"Unauthorized","status":401,"detail":"The API key is unknown or revoked.","code":"unauthenticated"}""");
            }

            if (path.EndsWith("/rollback", StringComparison.Ordinal))
            {
                context.Response.StatusCode = StatusCodes.Status403Forbidden;
                context.Response.ContentType = "application/problem+json";
                return context.Response.WriteAsync("""{"status":403,"detail":"The key's producerGroups do not include 'order-service'.","code":"forbidden"}""");
            }

            // A proxy in front of the broker: a bare 401, no problem document.
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return Task.CompletedTask;
        });
        await using var provider = Client(listener.BaseAddress, Key);
        var client = provider.GetRequiredService<HalfMsgClient>();

        // Commit, rollback and GET are retry-safe: a transient failure would be tried 4 times.
        var unauthenticated = await Assert.ThrowsAsync<HalfMsgException>(() => client.CommitAsync("t-1"));
        Assert.Equal((401, "unauthenticated", "The API key is unknown or revoked."), (unauthenticated.Status, unauthenticated.Code, unauthenticated.Detail));
        Assert.False(unauthenticated.IsTransient);
        Assert.Contains("HalfMsgClientOptions.ApiKey", unauthenticated.Message, StringComparison.Ordinal);

        var forbidden = await Assert.ThrowsAsync<HalfMsgException>(() => client.RollbackAsync("t-1"));
        Assert.Equal((403, "forbidden"), (forbidden.Status, forbidden.Code));
        Assert.False(forbidden.IsTransient);
        Assert.Contains("role or scopes", forbidden.Message, StringComparison.Ordinal);

        var bare = await Assert.ThrowsAsync<HalfMsgException>(() => client.Api.GetTopicsAsync());
        Assert.Equal((401, "unauthenticated"), (bare.Status, bare.Code));

        Assert.Equal(3, listener.Requests.Count);
        Assert.All(new[] { unauthenticated, forbidden, bare }, e => Assert.DoesNotContain(Key, e.ToString(), StringComparison.Ordinal));
    }
}

/// <summary>Everything the SDK logs at Trace level during a whole session, failures included, never holds the key.</summary>
public sealed class ApiKeyLoggingTests(KeyedBrokerFixture broker) : IClassFixture<KeyedBrokerFixture>
{
    private const string Key = KeyedBrokerFixture.AdminKey;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_session_logged_at_Trace_never_shows_the_key(bool appUnredactsHeaders)
    {
        var logs = new CapturedLogs();
        var topic = Names.Unique("keyed-orders");
        var group = Names.Unique("keyed-stock");

        // Send, half message, commit, receive and ack against the broker.
        var services = new ServiceCollection();
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(logs));
        var halfMsg = services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = broker.BaseAddress;
            o.ApiKey = Key;
        });
        // The SDK's HTTP client logs nothing until the app opts in, as one debugging its calls does.
        halfMsg.HttpClient.AddDefaultLogger();
        if (appUnredactsHeaders)
        {
            halfMsg.HttpClient.RedactLoggedHeaders(_ => false); // an app debugging its calls
        }

        await using (var provider = services.BuildServiceProvider())
        {
            var client = provider.GetRequiredService<HalfMsgClient>();
            await client.PutSubscriptionAsync(group, topic, new SubscriptionRequest());
            await client.SendAsync(topic, new Order("k-1", 1));
            var producer = new TransactionalProducer(client, Names.Unique("keyed-producers"), provider.GetRequiredService<ILogger<TransactionalProducer>>());
            var sent = await producer.SendInTransactionAsync(topic, new Order("k-2", 2), (_, _) => Task.FromResult(LocalTransactionState.Commit));
            Assert.False(sent.LeftToCheckBack);

            var received = new List<ReceivedMessage>();
            await Eventually.UntilAsync(
                async () =>
                {
                    received.AddRange(await client.ReceiveAsync(group, topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(2) }));
                    return received.Count;
                },
                n => n == 2,
                "both messages");
            foreach (var message in received)
            {
                Assert.True(await message.AckAsync());
            }
        }

        // A broker that refuses the key: the app's call fails, and the SDK's own pull consumer logs its retries.
        await using var refusing = await RecordingListener.StartAsync(context =>
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.Headers.WWWAuthenticate = "Bearer";
            context.Response.ContentType = "application/problem+json";
            return context.Response.WriteAsync("""{"status":401,"detail":"The API key is unknown or revoked.","code":"unauthenticated"}""");
        });
        var host = Host.CreateApplicationBuilder();
        host.Logging.ClearProviders().SetMinimumLevel(LogLevel.Trace).AddProvider(logs);
        var refused = host.Services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = refusing.BaseAddress;
            o.ApiKey = Key;
        }).AddPullConsumer<Order>(group, topic, (_, _, _) => Task.CompletedTask);
        refused.HttpClient.AddDefaultLogger();
        if (appUnredactsHeaders)
        {
            refused.HttpClient.RedactLoggedHeaders(_ => false);
        }

        using (var app = host.Build())
        {
            await app.StartAsync();
            var ex = await Assert.ThrowsAsync<HalfMsgException>(() => app.Services.GetRequiredService<HalfMsgClient>().CommitAsync("t-1"));
            app.Services.GetRequiredService<ILogger<ApiKeyLoggingTests>>().LogError(ex, "Commit failed"); // as an app would
            await Eventually.UntilAsync(
                () => logs.Entries.Any(e => e.StartsWith("Warning", StringComparison.Ordinal) && e.Contains("401 unauthenticated", StringComparison.Ordinal)),
                "the pull consumer's warning about the 401");
            await app.StopAsync();
        }

        Assert.All(refusing.Requests, r => Assert.Equal("Bearer " + Key, r.Header("Authorization")));
        var all = logs.All;
        Assert.DoesNotContain(Key, all, StringComparison.Ordinal);
        // The header logs ran, with the header in them: the key was there to leak, and did not.
        Assert.Contains("Authorization: *", all, StringComparison.Ordinal);
        Assert.Contains(appUnredactsHeaders ? "Accept: application/json" : "Accept: *", all, StringComparison.Ordinal);
        Assert.Contains("Commit failed", all, StringComparison.Ordinal);
    }
}
