using System.Net;

namespace HalfMsgBroker.Client.Tests;

/// <summary>The rest of the contract through the public client (<see cref="IHalfMsgClient"/>): look-ups, listing, dead letters; health through the internal API.</summary>
[Collection(BrokerCollection.Name)]
public sealed class ApiSurfaceTests(BrokerFixture broker)
{
    private readonly string _topic = Names.Unique("audit");
    private readonly string _group = Names.Unique("auditor");
    private readonly string _producerGroup = Names.Unique("auditing");

    [Fact]
    public async Task Lookups_transaction_listing_dead_letters_and_health_round_trip()
    {
        IHalfMsgClient api = broker.Client;
        var subscription = await api.PutSubscriptionAsync(_group, _topic, new SubscriptionRequest(TagFilter: "a || b", MaxAttempts: 1, OnExhausted: ExhaustedAction.DeadLetter));
        Assert.Equal("a || b", subscription.TagFilter);
        Assert.Equal(1, subscription.MaxAttempts);
        Assert.Null(subscription.Push);

        var key = Names.Unique("key");
        var sent = await broker.Client.SendAsync(_topic, new Order("x-1", 1), new MessageOptions { Tag = "a", Keys = [key], Properties = new Dictionary<string, string> { ["source"] = "test" } });
        var again = await broker.Client.SendAsync(_topic, new Order("x-1", 1), new MessageOptions { Tag = "a", IdempotencyKey = key });
        var repeat = await broker.Client.SendAsync(_topic, new Order("x-1", 1), new MessageOptions { Tag = "a", IdempotencyKey = key });
        Assert.Equal(again.MessageId, repeat.MessageId); // Idempotency-Key: the first message comes back

        var message = await api.GetMessageAsync(sent.MessageId);
        Assert.Equal(MessageState.Committed, message.State);
        Assert.Equal("test", message.Properties!["source"]);
        Assert.Equal("x-1", message.Body.GetProperty("orderId").GetString());
        var found = await api.FindMessagesAsync(key: key, topic: _topic);
        Assert.Equal(sent.MessageId, Assert.Single(found.Messages).MessageId);
        Assert.Contains((await api.GetTopicsAsync()).Topics, t => t.Topic == _topic && t.MessageCount >= 2);

        var half = await broker.Client.SendHalfAsync(_topic, _producerGroup, new Order("x-2", 1), new HalfMsgSendOptions { CheckImmunity = TimeSpan.FromMinutes(10) });
        var listed = await api.ListTransactionsAsync(new TransactionQuery { State = MessageState.Prepared, ProducerGroup = _producerGroup });
        Assert.Equal(half.TransactionId, Assert.Single(listed.Transactions).TransactionId);
        Assert.Equal(MessageState.RolledBack, (await broker.Client.RollbackAsync(half.TransactionId)).State);
        Assert.Equal(MessageState.RolledBack, (await broker.Client.RollbackAsync(half.TransactionId)).State); // idempotent
        var conflict = await Assert.ThrowsAsync<HalfMsgException>(() => broker.Client.CommitAsync(half.TransactionId));
        Assert.Equal((409, "transaction-conflict"), (conflict.Status, conflict.Code));
        var missing = await Assert.ThrowsAsync<HalfMsgException>(() => api.GetTransactionAsync("no-such-" + Guid.NewGuid().ToString("N")));
        Assert.Equal((404, "transaction-not-found"), (missing.Status, missing.Code));
        var invalid = await Assert.ThrowsAsync<HalfMsgException>(() => broker.Client.SendAsync("bad topic", new Order("x", 1)));
        Assert.Equal((400, "invalid-name"), (invalid.Status, invalid.Code));

        // maxAttempts 1: one failed delivery makes both messages dead letters
        var received = await Eventually.UntilAsync(
            async () => (await broker.Client.ReceiveAsync(_group, _topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(2) })).ToList(),
            batch => batch.Count == 2,
            "both messages");
        foreach (var m in received)
        {
            await m.NackAsync(TimeSpan.Zero);
        }

        var dead = await Eventually.UntilAsync(() => api.GetDeadLettersAsync(_group, topic: _topic), d => d.DeadLetters.Count == 2, "two dead letters");
        Assert.All(dead.DeadLetters, d => Assert.Equal(1, d.Attempts));
        var group = await api.GetConsumerGroupAsync(_group);
        Assert.Equal(2, Assert.Single(group.Subscriptions).Counts!.DeadLettered);

        await api.RedriveDeadLettersAsync(_group, [sent.MessageId]);
        var redriven = Assert.Single(await broker.Client.ReceiveAsync(_group, _topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(5) }));
        Assert.Equal(sent.MessageId, redriven.MessageId);
        Assert.True(await redriven.AckAsync());

        await api.DeleteDeadLetterAsync(_group, again.MessageId);
        Assert.Empty((await api.GetDeadLettersAsync(_group)).DeadLetters);
        Assert.Equal(0, (await api.DeleteDeadLettersAsync(_group, _topic)).Deleted);

        await api.DeleteSubscriptionAsync(_group, _topic);
        var gone = await Assert.ThrowsAsync<HalfMsgException>(() => api.ReceiveAsync(_group, _topic, new ReceiveOptions { MaxMessages = 1, WaitTime = TimeSpan.Zero, InvisibleFor = TimeSpan.FromSeconds(1) }));
        Assert.Equal(404, gone.Status);

        using var live = await broker.Api.GetLivenessAsync();
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        using var ready = await broker.Api.GetReadinessAsync();
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Contains("/v1/topics/{topic}/half-messages", await broker.Api.GetOpenApiDocumentAsync(), StringComparison.Ordinal);
    }
}
