using System.Net;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>
/// PostgreSQL's text type holds no NUL: the API refuses control characters in what reaches a text column with
/// the same 400 on both providers, and the PostgreSQL store turns the database's refusal into a 400 as a backstop.
/// </summary>
public sealed class ControlCharacterTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    public static TheoryData<string> Providers => StoreUnderTest.Providers;

    private async Task<BrokerFactory> Broker(string provider)
    {
        if (provider == StoreUnderTest.PostgreSql) StoreUnderTest.RequirePostgreSql();
        return provider == StoreUnderTest.PostgreSql
        ? new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:Storage:Provider"] = "PostgreSql",
            ["ConnectionStrings:HalfMsg"] = await cluster.CreateDatabaseAsync("nul"),
        })
        : new BrokerFactory();
    }

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public async Task A_key_with_a_control_character_is_refused_with_400_on_send_batch_send_and_lookup(string provider)
    {
        await using var factory = await Broker(provider);
        var c = factory.CreateClient();

        var send = await c.Post("/v1/topics/orders/messages", new { body = new { n = 1 }, keys = new[] { "ok", "bad\0key" } });
        Assert.Equal(HttpStatusCode.BadRequest, send.Status);
        Assert.Contains("keys[1]", send.Raw, StringComparison.Ordinal);
        Assert.Contains("without control characters", send.Raw, StringComparison.Ordinal);

        var batch = await c.Post("/v1/messages/batch", new { items = new[] { new { topic = "orders", body = new { n = 1 }, keys = new[] { "a\u0001" } } } });
        Assert.True(batch.Status is HttpStatusCode.BadRequest or HttpStatusCode.MultiStatus or HttpStatusCode.OK, batch.ToString());
        Assert.DoesNotContain("\"status\":500", batch.Raw, StringComparison.Ordinal);
        Assert.Contains("without control characters", batch.Raw, StringComparison.Ordinal);

        var lookup = await c.Get("/v1/messages?key=%00");
        Assert.Equal(HttpStatusCode.BadRequest, lookup.Status);
        Assert.Contains("without control characters", lookup.Raw, StringComparison.Ordinal);

        // Nothing was stored, and the broker still takes a clean send.
        Assert.Equal(HttpStatusCode.Created, (await c.Post("/v1/topics/orders/messages", new { body = new { n = 2 }, keys = new[] { "ok" } })).Status);
        var topics = (await c.Get("/v1/topics")).Json["topics"]!.AsArray();
        Assert.Equal(1, topics.Single(t => t.Str("topic") == "orders")!.Int("messageCount"));
    }

    [PostgresFact]
    public async Task A_NUL_that_reaches_PostgreSQL_is_a_refused_input_not_a_server_error_and_the_writer_goes_on()
    {
        await using var dataSource = NpgsqlDataSource.Create(await cluster.CreateDatabaseAsync("nulstore"));
        PostgreSqlSchema.Migrate(dataSource);
        using var store = new PostgreSqlMessageStore(dataSource);
        var ids = new HalfMsgBroker.Engine.MessageIds();
        StoredMessage Message(params string[] keys) => new()
        {
            Id = ids.Next(1_000), Topic = "orders", Keys = keys, Body = new byte[2], State = HalfMsgBroker.Lifecycle.MessageState.Committed, BornAt = 1,
        };

        var bad = Message("bad\0key");
        var refused = Assert.Throws<StoreRefusedInputException>(() => store.RunBatch(() => store.Insert(bad)));
        Assert.Contains("control characters", refused.Message, StringComparison.Ordinal);
        var good = Message("good");
        store.RunBatch(() => store.Insert(good));
        Assert.Null(store.Find(bad.Id));
        Assert.NotNull(store.Find(good.Id));
        Assert.Throws<StoreRefusedInputException>(() => store.FindByKey("bad\0key", null, null, 10));
    }
}
