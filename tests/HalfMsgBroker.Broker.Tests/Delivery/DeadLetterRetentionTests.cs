using System.Net;
using System.Text;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Hosting;
using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Tests.Delivery;

public sealed class DeadLetterRetentionTests
{
    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private static async Task<string> DeadLetter(HttpClient c, string group, string topic)
    {
        var id = await c.Send(topic);
        var m = Assert.Single(await Eventually.Until(() => c.Receive(group, topic), r => r.Count == 1, "the delivery"))!;
        await c.Post($"/v1/consumer-groups/{group}/nack", new { receiptHandle = m.Str("receiptHandle"), retryAfterSeconds = 0 });
        await Eventually.Until(() => c.DeliveryState(id, group), s => s == "deadLettered", "dead letter");
        return id;
    }

    private static async Task<List<(string Id, DateTime At)>> DeadLetters(HttpClient c, string group) =>
        (await c.Get($"/v1/consumer-groups/{group}/dead-letters")).Json["deadLetters"]!.AsArray()
            .Select(d => (d.Str("messageId"), d!["deadLetteredAt"]!.GetValue<DateTime>().ToUniversalTime()))
            .ToList();

    private static async Task<int> DeadLetterCount(HttpClient c, string group) =>
        (await c.Get($"/v1/consumer-groups/{group}")).Json["subscriptions"]!.AsArray().Single()!["counts"].Int("deadLettered");

    [Fact]
    public async Task A_dead_letter_older_than_its_retention_is_given_up_and_a_newer_one_stays()
    {
        var retention = TimeSpan.FromSeconds(3);
        await using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Retention:DeadLetters"] = "00:00:03" });
        using var c = factory.CreateClient();
        var (group, topic) = (Unique("g"), Unique("t"));
        await c.Subscribe(group, topic, new { maxAttempts = 1 });

        var old = await DeadLetter(c, group, topic);
        var oldAt = Assert.Single(await DeadLetters(c, group)).At;
        // The second is made half a retention later, so it is still young when the first runs out.
        await Eventually.Until(() => DateTime.UtcNow >= oldAt + retention / 2, "half the retention to pass");
        var young = await DeadLetter(c, group, topic);
        Assert.Equal(2, await DeadLetterCount(c, group));

        var left = await Eventually.Until(() => DeadLetters(c, group), l => l.Count == 1, "the old dead letter to expire");
        Assert.Equal(young, left.Single().Id);
        Assert.True(DateTime.UtcNow < left.Single().At + retention, "the young one was checked before its own retention ran out");
        Assert.Equal(1, await DeadLetterCount(c, group));

        // Given up the way an operator's delete gives it up: the delivery is discarded, and says why.
        var delivery = (await c.Message(old))["deliveries"]!.AsArray().Single()!;
        Assert.Equal("discarded", delivery.Str("state"));
        Assert.Contains("Broker:Retention:DeadLetters", delivery.Str("lastError"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_expired_dead_letter_lets_its_message_finish_and_be_purged()
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:Retention"] = "00:00:00.300",
            ["Broker:Retention:DeadLetters"] = "00:00:00.500",
        });
        using var c = factory.CreateClient();
        var (group, topic) = (Unique("g"), Unique("t"));
        await c.Subscribe(group, topic, new { maxAttempts = 1 });
        var id = await DeadLetter(c, group, topic);

        await Eventually.Until(async () => (await c.Get($"/v1/messages/{id}")).Status, s => s == HttpStatusCode.NotFound, "the message purged");
        Assert.Empty(await DeadLetters(c, group));
        Assert.Equal(0, await DeadLetterCount(c, group));
    }

    private static BrokerOptions Bind(Action<IConfigurationBuilder> configure)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.Sources.Clear();
        configure(builder.Configuration);
        builder.AddHalfMsgBroker();
        using var app = builder.Build();
        return app.Services.GetRequiredService<IOptions<BrokerOptions>>().Value;
    }

    private static Action<IConfigurationBuilder> Settings(params (string Key, string Value)[] settings) =>
        b => b.AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value)));

    private static Action<IConfigurationBuilder> Json(string json) =>
        b => b.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json)));

    [Fact]
    public void Broker_Retention_keeps_its_value_beside_its_dead_letter_child()
    {
        var defaults = Bind(Settings());
        Assert.Equal((TimeSpan.FromHours(72), TimeSpan.FromDays(14)), (defaults.Retention, defaults.DeadLetterRetention));

        var both = Bind(Settings(("Broker:Retention", "05:00:00"), ("Broker:Retention:DeadLetters", "2.00:00:00")));
        Assert.Equal((TimeSpan.FromHours(5), TimeSpan.FromDays(2)), (both.Retention, both.DeadLetterRetention));

        var childOnly = Bind(Settings(("Broker:Retention:DeadLetters", "00:30:00")));
        Assert.Equal((TimeSpan.FromHours(72), TimeSpan.FromMinutes(30)), (childOnly.Retention, childOnly.DeadLetterRetention));
        // Some configuration sources give a section that only has children an empty value.
        var emptyValue = Bind(Settings(("Broker:Retention", ""), ("Broker:Retention:DeadLetters", "00:30:00")));
        Assert.Equal(TimeSpan.FromHours(72), emptyValue.Retention);
        var garbage = Assert.Throws<InvalidOperationException>(() => Bind(Settings(("Broker:Retention", "three days"))));
        Assert.Contains("'Broker:Retention'", garbage.Message, StringComparison.Ordinal);

        // A JSON value is a string or an object: the object spells the message retention "Messages".
        var json = Bind(Json("""{ "Broker": { "Retention": { "Messages": "06:00:00", "DeadLetters": "3.00:00:00" } } }"""));
        Assert.Equal((TimeSpan.FromHours(6), TimeSpan.FromDays(3)), (json.Retention, json.DeadLetterRetention));

        var zero = Assert.Throws<OptionsValidationException>(() => Bind(Settings(("Broker:Retention:DeadLetters", "00:00:00"))));
        Assert.Contains("Broker:Retention:DeadLetters must be > 0", zero.Message, StringComparison.Ordinal);
    }
}
