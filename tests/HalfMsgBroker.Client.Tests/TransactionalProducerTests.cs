using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Client.Tests;

[Collection(BrokerCollection.Name)]
public sealed class TransactionalProducerTests(BrokerFixture broker) : IDisposable
{
    private readonly OrderDb _db = new();
    private readonly string _topic = Names.Unique("orders");
    private readonly string _group = Names.Unique("order-service");
    private readonly string _consumer = Names.Unique("inventory");

    public void Dispose() => _db.Dispose();

    private async Task<TestApp> StartProducerAppAsync(Action<WebApplication>? mapCheck = null, bool endOneWay = false)
    {
        var app = await TestApp.StartAsync(
            broker.BaseAddress,
            b =>
            {
                b.Services.AddSingleton(_db);
                b.AddTransactionalProducer(_group, TestApp.UrlOf("/halfmsg/check")).AddTransactionChecker<LogChecker>();
                b.Services.Configure<TransactionalProducerOptions>(_group, o => o.EndOneWay = endOneWay);
            },
            a =>
            {
                if (mapCheck is null)
                {
                    a.MapHalfMsgCheck("/halfmsg/check");
                }
                else
                {
                    mapCheck(a);
                }
            });
        // the hosted service registers the group and its check URL at start-up, and says when it is done
        var status = app.Services.GetRequiredService<IHalfMsgRegistrationStatus>();
        await status.WhenRegistered.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(status.IsRegistered);
        var health = await new HalfMsgRegistrationHealthCheck(status).CheckHealthAsync(new Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckContext());
        Assert.Equal(Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy, health.Status);
        Assert.Equal(app.Url("/halfmsg/check"), (await broker.Api.GetProducerGroupAsync(_group)).CheckUrl);
        return app;
    }

    private Task SubscribeAsync() => broker.Api.PutSubscriptionAsync(_consumer, _topic, new SubscriptionRequest());

    private Task<TransactionInfo> WaitForEndAsync(string transactionId) =>
        Eventually.UntilAsync(() => broker.Api.GetTransactionAsync(transactionId), t => t.State != MessageState.Prepared, "transaction " + transactionId + " to end");

    private async Task<IReadOnlyList<ReceivedMessage>> ReceiveAsync(TimeSpan wait) =>
        await broker.Client.ReceiveAsync(_consumer, _topic, new ReceiveOptions { WaitTime = wait, InvisibleFor = TimeSpan.FromSeconds(30) });

    [Fact]
    public async Task Commit_outcome_commits_the_message_and_delivers_it()
    {
        await SubscribeAsync();
        await using var app = await StartProducerAppAsync();
        var producer = app.Services.GetRequiredService<TransactionalProducer>();

        var result = await producer.SendInTransactionAsync(_topic, new Order("o-1", 3), async (tx, _) =>
        {
            await _db.PlaceOrderAsync("o-1", tx.TransactionId);
            return LocalTransactionState.Commit;
        }, new HalfMsgSendOptions { Tag = "created", Keys = ["o-1"] });

        Assert.False(result.LeftToCheckBack);
        Assert.Equal(LocalTransactionState.Commit, result.LocalState);
        var info = await broker.Api.GetTransactionAsync(result.TransactionId);
        Assert.Equal(MessageState.Committed, info.State);
        Assert.Equal(TransactionResolver.Producer, info.ResolvedBy);
        Assert.Equal(_group, info.ProducerGroup);

        var messages = await ReceiveAsync(TimeSpan.FromSeconds(5));
        var message = Assert.Single(messages);
        Assert.Equal(result.MessageId, message.MessageId);
        Assert.Equal(new Order("o-1", 3), message.GetBody<Order>());
        Assert.Equal("created", message.Tag);
        Assert.True(await message.AckAsync());
    }

    [Fact]
    public async Task Rollback_outcome_rolls_back_and_nothing_is_delivered()
    {
        await SubscribeAsync();
        await using var app = await StartProducerAppAsync();
        var producer = app.Services.GetRequiredService<TransactionalProducer>();

        var result = await producer.SendInTransactionAsync(_topic, new Order("o-2", 1), (_, _) => Task.FromResult(LocalTransactionState.Rollback));

        Assert.False(result.LeftToCheckBack);
        var info = await broker.Api.GetTransactionAsync(result.TransactionId);
        Assert.Equal(MessageState.RolledBack, info.State);
        Assert.Equal(TransactionResolver.Producer, info.ResolvedBy);
        Assert.Empty(await ReceiveAsync(TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task Throw_after_the_local_commit_is_resolved_to_commit_by_the_check_back()
    {
        await SubscribeAsync();
        await using var app = await StartProducerAppAsync();
        var producer = app.Services.GetRequiredService<TransactionalProducer>();
        string? transactionId = null;

        await Assert.ThrowsAsync<TimeoutException>(() => producer.SendInTransactionAsync(_topic, new Order("o-3", 1), async (tx, _) =>
        {
            transactionId = tx.TransactionId;
            await _db.PlaceOrderAsync("o-3", tx.TransactionId); // committed locally …
            throw new TimeoutException("… but the acknowledgement got lost");
        }));

        Assert.NotNull(transactionId);
        var info = await WaitForEndAsync(transactionId);
        Assert.Equal(MessageState.Committed, info.State);
        Assert.Equal(TransactionResolver.Check, info.ResolvedBy);
        Assert.True(info.CheckCount >= 1);
        Assert.Contains(_db.CheckAnswers, a => a.TransactionId == transactionId && a.State == LocalTransactionState.Commit);
        var message = Assert.Single(await ReceiveAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal("o-3", message.GetBody<Order>().OrderId);
    }

    [Fact]
    public async Task Throw_before_the_local_commit_is_resolved_to_rollback_by_the_check_back()
    {
        await SubscribeAsync();
        await using var app = await StartProducerAppAsync();
        var producer = app.Services.GetRequiredService<TransactionalProducer>();
        string? transactionId = null;

        await Assert.ThrowsAsync<InvalidOperationException>(() => producer.SendInTransactionAsync(_topic, new Order("o-4", 1), (tx, _) =>
        {
            transactionId = tx.TransactionId;
            throw new InvalidOperationException("database down");
        }));

        var info = await WaitForEndAsync(transactionId!);
        Assert.Equal(MessageState.RolledBack, info.State);
        Assert.Equal(TransactionResolver.Check, info.ResolvedBy);
        Assert.Empty(await ReceiveAsync(TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task Crash_between_half_message_and_commit_is_resolved_by_the_checker_of_the_restarted_app()
    {
        await SubscribeAsync();
        string committedTx;
        string lostTx;
        await using (var first = await StartProducerAppAsync(a => a.MapHalfMsgCheck("/halfmsg/check", (_, _, _) => Task.FromResult(LocalTransactionState.Unknown))))
        {
            var client = first.Services.GetRequiredService<HalfMsgClient>();
            var half = await client.SendHalfAsync(_topic, _group, new Order("o-5", 1));
            await _db.PlaceOrderAsync("o-5", half.TransactionId);
            committedTx = half.TransactionId;
            lostTx = (await client.SendHalfAsync(_topic, _group, new Order("o-6", 1))).TransactionId; // died before its local commit
            // the process dies here: no commit, no rollback
        }

        Assert.Equal(MessageState.Prepared, (await broker.Api.GetTransactionAsync(committedTx)).State);
        await using var restarted = await StartProducerAppAsync();

        var committed = await WaitForEndAsync(committedTx);
        var lost = await WaitForEndAsync(lostTx);
        Assert.Equal(MessageState.Committed, committed.State);
        Assert.Equal(TransactionResolver.Check, committed.ResolvedBy);
        Assert.Equal(MessageState.RolledBack, lost.State);
        Assert.Equal(TransactionResolver.Check, lost.ResolvedBy);
        var message = Assert.Single(await ReceiveAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal("o-5", message.GetBody<Order>().OrderId);
    }

    [Fact]
    public async Task A_checker_can_answer_ask_again_later_without_spending_the_brokers_checks()
    {
        var asked = new List<DateTimeOffset>();
        await using var app = await StartProducerAppAsync(a => a.MapHalfMsgCheck("/halfmsg/check", (_, _, _) =>
        {
            lock (asked)
            {
                asked.Add(DateTimeOffset.UtcNow);
                return Task.FromResult(asked.Count < 3 ? TransactionCheckResult.AskAgainIn(TimeSpan.FromSeconds(1)) : TransactionCheckResult.Commit);
            }
        }));
        var half = await app.Services.GetRequiredService<HalfMsgClient>().SendHalfAsync(_topic, _group, new Order("o-9", 1));

        var info = await WaitForEndAsync(half.TransactionId);
        Assert.Equal(MessageState.Committed, info.State);
        Assert.Equal(TransactionResolver.Check, info.ResolvedBy);
        Assert.Equal(1, info.CheckCount); // only the commit spent a check
        Assert.Equal(2, info.UnknownCount);
        lock (asked)
        {
            Assert.Equal(3, asked.Count);
            // The broker waited the asked second instead of its 300 ms check interval.
            Assert.True(asked[1] - asked[0] >= TimeSpan.FromSeconds(0.9), $"asked again after {asked[1] - asked[0]}");
        }
    }

    [Fact]
    public void Ask_again_later_is_sent_as_unknown_with_whole_retry_after_seconds()
    {
        var answer = TransactionCheckResult.AskAgainIn(TimeSpan.FromSeconds(2.2));
        var json = System.Text.Json.JsonSerializer.Serialize(
            new TransactionCheckResponse(answer.State, 3), HalfMsgJsonContext.Default.TransactionCheckResponse);
        Assert.Equal("{\"state\":\"unknown\",\"retryAfterSeconds\":3}", json);
        Assert.Equal(TimeSpan.FromSeconds(2.2), answer.RetryAfter);
        Assert.Equal("{\"state\":\"commit\"}", System.Text.Json.JsonSerializer.Serialize(
            new TransactionCheckResponse(((TransactionCheckResult)LocalTransactionState.Commit).State), HalfMsgJsonContext.Default.TransactionCheckResponse));
        Assert.Throws<ArgumentOutOfRangeException>(() => TransactionCheckResult.AskAgainIn(TimeSpan.FromMilliseconds(500)));
    }

    /// <summary>
    /// The race the transaction log closes: the check arrives while the local transaction is open but has
    /// written nothing yet. The checker marks it rolled back; the local transaction then fails on its insert.
    /// </summary>
    [Fact]
    public async Task Check_arriving_while_the_local_transaction_is_open_rolls_back_and_the_local_transaction_fails()
    {
        await SubscribeAsync();
        var answered = new TaskCompletionSource<LocalTransactionState>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await StartProducerAppAsync(a => a.MapHalfMsgCheck("/halfmsg/check", async (request, services, ct) =>
        {
            var state = await new LogChecker(_db).CheckAsync(request, ct);
            answered.TrySetResult(state);
            return state;
        }));
        var producer = app.Services.GetRequiredService<TransactionalProducer>();
        string? transactionId = null;

        await Assert.ThrowsAsync<SqliteException>(() => producer.SendInTransactionAsync(_topic, new Order("o-7", 1), async (tx, _) =>
        {
            transactionId = tx.TransactionId;
            await using var connection = _db.Open();
            await using var transaction = connection.BeginTransaction(deferred: true);
            // slow local transaction: the broker's check-back arrives meanwhile
            Assert.Equal(LocalTransactionState.Rollback, await answered.Task.WaitAsync(TimeSpan.FromSeconds(15)));
            await OrderDb.InsertOrderAsync(transaction, "o-7", tx.TransactionId);
            await _db.Log.RecordInLocalTransactionAsync(transaction, tx.TransactionId); // unique key: the marker is there
            await transaction.CommitAsync();
            return LocalTransactionState.Commit;
        }));

        var info = await WaitForEndAsync(transactionId!);
        Assert.Equal(MessageState.RolledBack, info.State);
        Assert.Equal(TransactionResolver.Check, info.ResolvedBy);
        Assert.Equal(0, _db.Count("orders", "o-7")); // the order did not commit after the broker rolled back
        Assert.Empty(await ReceiveAsync(TimeSpan.FromSeconds(1)));
    }

    /// <summary>
    /// The other side of the race: the local transaction recorded itself first and holds its lock across a check;
    /// the checker cannot decide and answers unknown (not rollback), and the transaction commits afterwards.
    /// </summary>
    [Fact]
    public async Task Check_blocked_by_an_open_local_transaction_answers_unknown_and_the_commit_still_wins()
    {
        await SubscribeAsync();
        await using var app = await StartProducerAppAsync();
        var producer = app.Services.GetRequiredService<TransactionalProducer>();

        var result = await producer.SendInTransactionAsync(_topic, new Order("o-8", 1), async (tx, _) =>
        {
            await using var connection = _db.Open();
            await using var transaction = connection.BeginTransaction(); // immediate: holds the write lock
            await _db.Log.RecordInLocalTransactionAsync(transaction, tx.TransactionId);
            await OrderDb.InsertOrderAsync(transaction, "o-8", tx.TransactionId);
            await Eventually.UntilAsync(() => _db.CheckAnswers.Any(a => a.TransactionId == tx.TransactionId), "a check while the local transaction is open");
            await transaction.CommitAsync();
            return LocalTransactionState.Commit;
        });

        Assert.False(result.LeftToCheckBack);
        Assert.All(_db.CheckAnswers.Where(a => a.TransactionId == result.TransactionId), a => Assert.Equal(LocalTransactionState.Unknown, a.State));
        var info = await broker.Api.GetTransactionAsync(result.TransactionId);
        Assert.Equal(MessageState.Committed, info.State);
        Assert.Equal(TransactionResolver.Producer, info.ResolvedBy);
        Assert.Equal(1, _db.Count("orders", "o-8"));
    }

    [Fact]
    public async Task End_one_way_commits_and_delivers_and_its_Ending_reports_the_brokers_answer()
    {
        await SubscribeAsync();
        await using var app = await StartProducerAppAsync(endOneWay: true);
        var producer = app.Services.GetRequiredService<TransactionalProducer>();
        Assert.True(producer.EndOneWay);

        var result = await producer.SendInTransactionAsync(_topic, new Order("o-9", 2), async (tx, _) =>
        {
            await _db.PlaceOrderAsync("o-9", tx.TransactionId);
            return LocalTransactionState.Commit;
        });

        Assert.False(result.LeftToCheckBack);
        Assert.True(await result.Ending.WaitAsync(TimeSpan.FromSeconds(30)));
        var info = await broker.Api.GetTransactionAsync(result.TransactionId);
        Assert.Equal(MessageState.Committed, info.State);
        Assert.Equal(TransactionResolver.Producer, info.ResolvedBy);
        var message = Assert.Single(await ReceiveAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(result.MessageId, message.MessageId);
    }

    [Fact]
    public async Task End_one_way_that_the_broker_refuses_completes_Ending_with_false_and_throws_nothing()
    {
        await using var app = await StartProducerAppAsync(endOneWay: true);
        var producer = app.Services.GetRequiredService<TransactionalProducer>();

        // The transaction is rolled back behind the producer's back, so its commit meets 409 transaction-conflict.
        var result = await producer.SendInTransactionAsync(_topic, new Order("o-10", 1), async (tx, _) =>
        {
            await broker.Api.RollbackAsync(tx.TransactionId);
            return LocalTransactionState.Commit;
        });

        Assert.False(result.LeftToCheckBack);
        Assert.False(await result.Ending.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(MessageState.RolledBack, (await broker.Api.GetTransactionAsync(result.TransactionId)).State);
    }

    [Fact]
    public async Task End_one_way_returns_while_the_commit_is_still_unanswered()
    {
        var commitArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var answerCommit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var standIn = await RecordingListener.StartAsync(async context =>
        {
            context.Response.ContentType = "application/json";
            if (context.Request.Path.Value!.EndsWith("/commit", StringComparison.Ordinal))
            {
                commitArrived.TrySetResult();
                await answerCommit.Task.WaitAsync(TimeSpan.FromSeconds(60));
                await context.Response.WriteAsync("""{"messageId":"m-1","transactionId":"t-1","state":"committed"}""");
                return;
            }
            context.Response.StatusCode = StatusCodes.Status201Created;
            await context.Response.WriteAsync("""{"messageId":"m-1","transactionId":"t-1","state":"prepared"}""");
        });
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHalfMsgClient(o => o.BaseAddress = standIn.BaseAddress);
        await using var provider = services.BuildServiceProvider();
        var producer = new TransactionalProducer(provider.GetRequiredService<IHalfMsgClient>(), "g") { EndOneWay = true };

        var result = await producer.SendInTransactionAsync("t", new Order("o-11", 1), (_, _) => Task.FromResult(LocalTransactionState.Commit),
            new HalfMsgSendOptions { TransactionId = "t-1" }).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.False(result.Ending.IsCompleted);
        await commitArrived.Task.WaitAsync(TimeSpan.FromSeconds(30));
        answerCommit.SetResult();
        Assert.True(await result.Ending.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(["/v1/topics/t/half-messages", "/v1/transactions/t-1/commit"], standIn.Requests.Select(r => r.Path).ToArray());
    }
}
