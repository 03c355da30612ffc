using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Client.Tests;

/// <summary>
/// Values outside the broker's limits throw <see cref="ArgumentOutOfRangeException"/> before anything is sent;
/// values at the limits pass the check. The client points at a port nothing listens on: a call that passed the
/// check fails with a transport <see cref="HalfMsgException"/> instead.
/// </summary>
public sealed class LimitsTests : IAsyncLifetime
{
    private ServiceProvider _services = null!;
    private IHalfMsgClient _client = null!;

    public Task InitializeAsync()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = new Uri("http://127.0.0.1:9");
            o.MaxRetryAttempts = 0;
        });
        _services = services.BuildServiceProvider();
        _client = _services.GetRequiredService<IHalfMsgClient>();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _services.DisposeAsync();

    private static async Task OutOfRange(Func<Task> call, string paramName, string limit)
    {
        var ex = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(call);
        Assert.Equal(paramName, ex.ParamName);
        Assert.Contains(limit, ex.Message, StringComparison.Ordinal);
    }

    private static async Task Sent(Func<Task> call) => Assert.Equal(0, (await Assert.ThrowsAsync<HalfMsgException>(call)).Status);

    private ReceivedMessage Received() => new(
        _client,
        "group",
        new ReceivedMessageData("m-1", "h-1", "orders", null, null, null, JsonSerializer.SerializeToElement(new Order("o", 1)), 1, DateTimeOffset.UnixEpoch));

    [Fact]
    public async Task Nack_delay_is_capped_at_the_brokers_12_hours_instead_of_being_clamped()
    {
        await OutOfRange(() => Received().NackAsync(TimeSpan.FromSeconds(43_201)), "retryAfter", "between 0 s and 43200 s");
        await OutOfRange(() => _client.NackAsync("group", "h-1", TimeSpan.FromDays(1)), "retryAfter", "between 0 s and 43200 s");
        await OutOfRange(() => _client.NackAsync("group", "h-1", TimeSpan.FromSeconds(-1)), "retryAfter", "between 0 s and 43200 s");
        await Sent(() => Received().NackAsync(HalfMsgLimits.MaxNackDelay));
    }

    [Fact]
    public async Task Receive_and_visibility_bounds_match_the_broker()
    {
        await OutOfRange(() => _client.ReceiveAsync("g", "t", new ReceiveOptions { MaxMessages = 101 }), "options.MaxMessages", "between 1 and 100");
        await OutOfRange(() => _client.ReceiveAsync("g", "t", new ReceiveOptions { MaxMessages = 0 }), "options.MaxMessages", "between 1 and 100");
        await OutOfRange(() => _client.ReceiveAsync("g", "t", new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(31) }), "options.WaitTime", "between 0 s and 30 s");
        await OutOfRange(() => _client.ReceiveAsync("g", "t", new ReceiveOptions { InvisibleFor = TimeSpan.FromMilliseconds(500) }), "options.InvisibleFor", "between 1 s and 43200 s");
        await OutOfRange(() => _client.ReceiveAsync("g", "t", new ReceiveOptions { InvisibleFor = TimeSpan.FromHours(12) + TimeSpan.FromSeconds(1) }), "options.InvisibleFor", "43200 s");
        Assert.Throws<ArgumentOutOfRangeException>(() => _client.ReceiveAllAsync("g", "t", new ReceiveOptions { WaitTime = TimeSpan.FromMinutes(1) }));
        await OutOfRange(() => Received().ExtendAsync(TimeSpan.Zero), "invisibleFor", "between 1 s and 43200 s");
        await OutOfRange(() => Received().ExtendAsync(TimeSpan.FromHours(13)), "invisibleFor", "43200 s");
        await Sent(() => _client.ReceiveAsync("g", "t", new ReceiveOptions { MaxMessages = 100, WaitTime = TimeSpan.FromSeconds(30), InvisibleFor = TimeSpan.FromHours(12) }));
        await Sent(() => Received().ExtendAsync(TimeSpan.FromHours(12)));
    }

    [Fact]
    public async Task Delays_check_immunity_and_call_timeouts_match_the_broker()
    {
        await OutOfRange(() => _client.SendAsync("t", 1, new MessageOptions { Delay = TimeSpan.FromSeconds(86_401) }), "options.Delay", "between 0 s and 86400 s");
        await OutOfRange(() => _client.SendHalfAsync("t", "p", 1, new HalfMsgSendOptions { CheckImmunity = TimeSpan.FromDays(2) }), "options.CheckImmunity", "86400 s");
        await OutOfRange(() => _client.SendBatchAsync([new SendMessageBatchItem("t", default, Delay: TimeSpan.FromSeconds(-1))]), "items.Delay", "between 0 s and 86400 s");
        await OutOfRange(() => _client.SendHalfBatchAsync([new HalfMsgBatchItem("t", "p", default, CheckImmunity: TimeSpan.FromDays(2))]), "items.CheckImmunity", "86400 s");
        await OutOfRange(() => _client.PutProducerGroupAsync("p", new ProducerGroupRequest(null, TimeSpan.FromMilliseconds(99))), "request.CheckTimeout", "between 100 ms and 60 s");
        await OutOfRange(() => _client.PutSubscriptionAsync("g", "t", new SubscriptionRequest(Push: new PushEndpoint(new Uri("http://127.0.0.1:9/p"), TimeSpan.FromSeconds(61)))), "request.Push.Timeout", "between 100 ms and 60 s");
        await OutOfRange(() => _client.PutSubscriptionAsync("g", "t", new SubscriptionRequest(MaxAttempts: 1001)), "request.MaxAttempts", "between 1 and 1000");
        await Assert.ThrowsAsync<ArgumentException>(() => _client.SendAsync("t", 1, new MessageOptions { Delay = TimeSpan.FromSeconds(1), DeliverAt = DateTimeOffset.UnixEpoch }));
        await Sent(() => _client.SendAsync("t", 1, new MessageOptions { Delay = HalfMsgLimits.MaxDelay }));
        await Sent(() => _client.PutProducerGroupAsync("p", new ProducerGroupRequest(null, HalfMsgLimits.MaxCallTimeout)));
    }

    [Fact]
    public async Task A_producer_groups_check_limits_match_the_broker()
    {
        await OutOfRange(() => _client.PutProducerGroupAsync("p", new ProducerGroupRequest(null, MaxChecksInFlight: 0)), "request.MaxChecksInFlight", "between 1 and 1000");
        await OutOfRange(() => _client.PutProducerGroupAsync("p", new ProducerGroupRequest(null, MaxChecksPerSecond: 100_001)), "request.MaxChecksPerSecond", "between 0 and 100000");
        await Sent(() => _client.PutProducerGroupAsync("p", new ProducerGroupRequest(null, MaxChecksInFlight: 1000, MaxChecksPerSecond: 0)));
    }

    [Fact]
    public async Task Batch_and_page_sizes_match_the_broker()
    {
        var messages = Enumerable.Range(0, 101).Select(i => new SendMessageBatchItem("t", JsonSerializer.SerializeToElement(i))).ToList();
        await OutOfRange(() => _client.SendBatchAsync(messages), "items", "1 to 100 items");
        await OutOfRange(() => _client.SendBatchAsync([]), "items", "1 to 100 items");
        await OutOfRange(() => _client.SendHalfBatchAsync(messages.Select(m => new HalfMsgBatchItem("t", "p", m.Body))), "items", "1 to 100 items");
        var ids = Enumerable.Range(0, 1001).Select(i => "t-" + i).ToList();
        await OutOfRange(() => _client.CommitBatchAsync(ids), "transactionIds", "1 to 1000 items");
        await OutOfRange(() => _client.RollbackBatchAsync(ids), "transactionIds", "1 to 1000 items");
        await OutOfRange(() => _client.AckAsync("g", ids), "receiptHandles", "1 to 1000 items");
        await OutOfRange(() => _client.GetDeadLettersAsync("g", limit: 0), "limit", "between 1 and 1000");
        await OutOfRange(() => _client.ListTransactionsAsync(new TransactionQuery { Limit = 1001 }), "query", "between 1 and 1000");
        await Sent(() => _client.SendBatchAsync(messages.Take(100)));
        await Sent(() => _client.CommitBatchAsync(ids.Take(1000)));
    }

    [Fact]
    public void Transaction_log_check_command_timeout_under_a_second_throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DbTransactionLog { CheckCommandTimeout = TimeSpan.FromMilliseconds(500) });
        Assert.Throws<ArgumentOutOfRangeException>(() => TransactionCheckResult.AskAgainIn(TimeSpan.FromMilliseconds(999)));
    }
}
