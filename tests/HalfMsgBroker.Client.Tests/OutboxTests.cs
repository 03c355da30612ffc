using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace HalfMsgBroker.Client.Tests;

/// <summary>The local message table: writes in the app's transaction, relays on a real SQLite file, a real broker.</summary>
[Collection(BrokerCollection.Name)]
public sealed class OutboxTests(BrokerFixture broker) : IDisposable
{
    private readonly OutboxDb _db = new();
    private readonly string _topic = Names.Unique("payments");
    private readonly string _group = Names.Unique("receipts");

    public void Dispose() => _db.Dispose();

    private long Attempts(string rowId) => _db.Scalar("SELECT attempts FROM halfmsg_outbox WHERE id = $id", ("$id", rowId));

    private long NextAttemptAt(string rowId) => _db.Scalar("SELECT next_attempt_at FROM halfmsg_outbox WHERE id = $id", ("$id", rowId));

    private async Task<MessageInfo> StoredOnceAsync(string paymentId) =>
        Assert.Single((await broker.Api.FindMessagesAsync(key: paymentId, topic: _topic)).Messages);

    [Fact]
    public async Task A_rolled_back_write_is_never_sent_and_a_committed_one_reaches_the_consumer_at_once_on_Notify()
    {
        await broker.Api.PutSubscriptionAsync(_group, _topic, new SubscriptionRequest());
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // A poll far beyond the test's deadline: only IOutbox.Notify can make the message arrive in time.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["HalfMsg:Outbox:PollInterval"] = "00:10:00" });
        builder.Services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = broker.BaseAddress;
            o.ApiKey = KeyedBrokerFixture.AdminKey;
        });
        builder.Services.AddHalfMsgOutbox(_ => _db.Create());
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var outbox = host.Services.GetRequiredService<IOutbox>();
            var relay = host.Services.GetServices<IHostedService>().OfType<OutboxRelay>().Single();
            await Eventually.UntilAsync(() => relay.Passes >= 1, "the relay's first pass");

            var rolledBack = await _db.PayAsync(outbox, _topic, "pay-rolled-back", commit: false);
            Assert.Equal(0, _db.Count($"id = '{rolledBack}'"));
            await _db.PayAsync(outbox, _topic, "pay-committed");

            var received = await Eventually.UntilAsync(
                async () => await broker.Client.ReceiveAsync(_group, _topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(1) }),
                batch => batch.Count > 0,
                "the committed payment's message");
            var message = Assert.Single(received);
            Assert.Equal("pay-committed", message.Body.GetProperty("paymentId").GetString());
            Assert.Equal("paid", message.Tag);
            Assert.True(await message.AckAsync());
            await Eventually.UntilAsync(() => _db.Count() == 0, "the sent row to be deleted");
            Assert.Empty((await broker.Api.FindMessagesAsync(key: "pay-rolled-back", topic: _topic)).Messages);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Fact]
    public async Task Rows_left_by_a_relay_that_died_after_sending_arrive_once_per_consumer()
    {
        await broker.Api.PutSubscriptionAsync(_group, _topic, new SubscriptionRequest());
        await Relays.EnsureTableAsync(_db);
        var processed = new DbProcessedMessageLog();
        await using (var connection = _db.Open())
        {
            await processed.EnsureCreatedAsync(connection);
        }

        // Committed while no relay runs (the app was killed right after its commits).
        var outbox = Relays.Outbox();
        var payments = new[] { "pay-1", "pay-2", "pay-3" };
        var rows = new List<string>();
        foreach (var payment in payments)
        {
            rows.Add(await _db.PayAsync(outbox, _topic, payment));
        }

        // Relay A claims them and sends them, and "dies" before it can mark them sent: its lease stays behind.
        var log = new SendLog();
        await using var clientA = new RelayClient(broker.BaseAddress, log, "a") { HangAfterAnswer = true };
        await using var clientB = new RelayClient(broker.BaseAddress, log, "b");
        var relayA = Relays.Create(clientA, _db, Relays.FastOptions("relay-a") with { LeaseDuration = TimeSpan.FromSeconds(2) });
        var relayB = Relays.Create(clientB, _db, Relays.FastOptions("relay-b"));
        await relayA.StartAsync(CancellationToken.None);
        try
        {
            await Eventually.UntilAsync(() => clientA.Held == 3, "relay A to send all three rows");
            var leaseUntil = _db.Scalar("SELECT MIN(lease_until) FROM halfmsg_outbox WHERE lease_owner LIKE 'relay-a/%'");
            Assert.Equal(3, _db.Count("lease_owner LIKE 'relay-a/%' AND sent_at IS NULL"));

            // A new instance of the app starts its relay: it takes the rows once the lease has run out.
            await relayB.StartAsync(CancellationToken.None);
            await Eventually.UntilAsync(() => _db.Count() == 0, "relay B to send and delete the rows");

            foreach (var row in rows)
            {
                Assert.Equal(2, log.Sends[row]);
                var answers = log.Answers.Where(a => a.Key == row).ToList();
                Assert.Equal(201, Assert.Single(answers, a => a.Relay == "a").Status);
                var second = Assert.Single(answers, a => a.Relay == "b");
                Assert.Equal(200, second.Status); // the broker replayed the first message (Idempotency-Key)
                Assert.True(second.At.ToUnixTimeMilliseconds() >= leaseUntil, "relay B sent a row while relay A's lease still held");
            }

            var messageIds = new List<string>();
            foreach (var payment in payments)
            {
                messageIds.Add((await StoredOnceAsync(payment)).MessageId);
            }

            // The consumer: its work and the message id commit together; the first ack of each is "lost".
            var acked = new HashSet<string>();
            var skipped = 0;
            await Eventually.UntilAsync(
                async () =>
                {
                    foreach (var message in await broker.Client.ReceiveAsync(_group, _topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(1) }))
                    {
                        await using var connection = _db.Open();
                        var first = await processed.ProcessOnceAsync(connection, _group, message.MessageId, async (_, transaction, ct) =>
                        {
                            await using var command = connection.CreateCommand();
                            command.Transaction = (Microsoft.Data.Sqlite.SqliteTransaction)transaction;
                            command.CommandText = "INSERT INTO effects (message_id) VALUES ($m)";
                            command.Parameters.AddWithValue("$m", message.MessageId);
                            await command.ExecuteNonQueryAsync(ct);
                        });
                        if (first)
                        {
                            await message.NackAsync(TimeSpan.Zero);
                        }
                        else
                        {
                            skipped++;
                            Assert.True(await message.AckAsync());
                            acked.Add(message.MessageId);
                        }
                    }

                    return acked.Count;
                },
                count => count == 3,
                "each message processed, redelivered and skipped");
            Assert.Equal(messageIds.Order(), acked.Order());
            Assert.Equal(3, skipped);
            Assert.Equal(3, _db.Scalar("SELECT COUNT(*) FROM effects"));
            Assert.Equal(3, _db.Scalar("SELECT COUNT(DISTINCT message_id) FROM effects"));
        }
        finally
        {
            clientA.ReleaseHeld();
            await relayA.StopAsync(CancellationToken.None);
            await relayB.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Two_relays_on_one_table_send_every_row_once_and_never_concurrently()
    {
        await Relays.EnsureTableAsync(_db);
        var outbox = Relays.Outbox();
        var rows = new List<string>();
        for (var i = 0; i < 120; i++)
        {
            rows.Add(await _db.PayAsync(outbox, _topic, "pay-" + i));
        }

        var log = new SendLog();
        await using var clientA = new RelayClient(broker.BaseAddress, log, "a");
        await using var clientB = new RelayClient(broker.BaseAddress, log, "b");
        // Relay b sends nothing until relay a has claimed a batch, and a's sends wait for b's first answer, so
        // both take part however the two are scheduled (a relay sends a batch before it claims the next, so
        // each holds only 10 rows meanwhile). Without b's hold, b could empty the table before a's first claim.
        clientB.HoldSendsUntil = clientA.SendStarted;
        clientA.HoldSendsUntil = clientB.Answered;
        var options = Relays.FastOptions("relay") with { BatchSize = 10, MaxConcurrentSends = 4 };
        var relays = new[] { Relays.Create(clientA, _db, options with { RelayId = "relay-a" }), Relays.Create(clientB, _db, options with { RelayId = "relay-b" }) };
        await Task.WhenAll(relays.Select(r => r.StartAsync(CancellationToken.None)));
        try
        {
            await Eventually.UntilAsync(() => _db.Count() == 0, "both relays to empty the table", TimeSpan.FromSeconds(60));
        }
        finally
        {
            await Task.WhenAll(relays.Select(r => r.StopAsync(CancellationToken.None)));
        }

        Assert.Equal(rows.Order(), log.Sends.Keys.Order());
        Assert.All(rows, row => Assert.Equal(1, log.Sends[row]));
        Assert.All(rows, row => Assert.Equal(1, log.MostInFlight[row]));
        Assert.All(log.Answers, a => Assert.Equal(201, a.Status));
        Assert.Contains(log.Answers, a => a.Relay == "a");
        Assert.Contains(log.Answers, a => a.Relay == "b");
    }

    [Fact]
    public Task Of_two_relays_that_selected_the_same_rows_only_the_first_to_lease_them_gets_them() =>
        ClaimRace.PlayAsync(_db.Create, _topic);

    [Fact]
    public async Task Broker_errors_back_off_exponentially_with_a_cap_until_the_broker_is_back()
    {
        await Relays.EnsureTableAsync(_db);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var signal = new OutboxSignal();
        var outbox = Relays.Outbox(time, signal);
        var log = new SendLog();
        await using var client = new RelayClient(broker.BaseAddress, log, "a") { Target = RelayClient.ClosedPort() };
        var options = Relays.FastOptions("relay-a") with
        {
            PollInterval = TimeSpan.FromMinutes(10), // never reached: Notify runs the passes
            RetryDelay = TimeSpan.FromSeconds(1),
            MaxRetryDelay = TimeSpan.FromSeconds(4),
        };
        var relay = Relays.Create(client, _db, options, time, signal);
        await relay.StartAsync(CancellationToken.None);
        try
        {
            var row = await _db.PayAsync(outbox, _topic, "pay-backoff");
            async Task PassAsync()
            {
                var before = relay.Passes;
                await Eventually.UntilAsync(
                    () =>
                    {
                        signal.Notify();
                        return relay.Passes >= before + 2; // one whole pass after this point
                    },
                    "a relay pass");
            }

            long[] ceilings = [1000, 2000, 4000, 4000];
            for (var failure = 1; failure <= ceilings.Length; failure++)
            {
                var attempts = failure;
                await Eventually.UntilAsync(
                    () =>
                    {
                        signal.Notify();
                        return Attempts(row) == attempts;
                    },
                    $"failed attempt {failure}");
                var delay = NextAttemptAt(row) - time.GetUtcNow().ToUnixTimeMilliseconds();
                Assert.InRange(delay, ceilings[failure - 1] / 2, ceilings[failure - 1]);
                Assert.Equal(0, _db.Count($"id = '{row}' AND (lease_owner IS NOT NULL OR last_error IS NULL)"));

                time.Advance(TimeSpan.FromMilliseconds(delay - 1));
                await PassAsync();
                Assert.Equal(failure, Attempts(row)); // not due yet: not tried
                time.Advance(TimeSpan.FromMilliseconds(1));
            }

            client.Target = null; // the broker is reachable again
            await Eventually.UntilAsync(
                () =>
                {
                    signal.Notify();
                    return _db.Count() == 0;
                },
                "the row to be sent");
            Assert.Equal(ceilings.Length + 1, log.Sends[row]);
            await StoredOnceAsync("pay-backoff");
        }
        finally
        {
            await relay.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Sent_rows_are_kept_for_the_retention_then_deleted()
    {
        await Relays.EnsureTableAsync(_db);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var signal = new OutboxSignal();
        var log = new SendLog();
        await using var client = new RelayClient(broker.BaseAddress, log, "a");
        var options = Relays.FastOptions("relay-a") with { PollInterval = TimeSpan.FromMinutes(10), SentRetention = TimeSpan.FromHours(1) };
        var relay = Relays.Create(client, _db, options, time, signal);
        await relay.StartAsync(CancellationToken.None);
        try
        {
            var row = await _db.PayAsync(Relays.Outbox(time, signal), _topic, "pay-kept");
            await Eventually.UntilAsync(() => _db.Count("sent_at IS NOT NULL") == 1, "the row to be sent");
            Assert.Equal(time.GetUtcNow().ToUnixTimeMilliseconds(), _db.Scalar("SELECT sent_at FROM halfmsg_outbox WHERE id = $id", ("$id", row)));
            Assert.Equal(1, Attempts(row));

            async Task AfterAsync(TimeSpan elapsed)
            {
                time.Advance(elapsed);
                var before = relay.Passes;
                await Eventually.UntilAsync(
                    () =>
                    {
                        signal.Notify();
                        return relay.Passes >= before + 2;
                    },
                    "a relay pass");
            }

            await AfterAsync(TimeSpan.FromMinutes(30));
            Assert.Equal(1, _db.Count());
            await AfterAsync(TimeSpan.FromMinutes(31));
            Assert.Equal(0, _db.Count());
            Assert.Equal(1, log.Sends[row]);
        }
        finally
        {
            await relay.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Bad_options_stop_the_host_from_starting_and_bad_messages_fail_the_write()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["HalfMsg:Outbox:BatchSize"] = "0",
            ["HalfMsg:Outbox:TableName"] = "outbox; DROP TABLE payments",
        });
        builder.Services.AddHalfMsgClient(o => o.BaseAddress = broker.BaseAddress);
        builder.Services.AddHalfMsgOutbox(_ => _db.Create());
        using var host = builder.Build();
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("BatchSize", error.Message, StringComparison.Ordinal);
        Assert.Contains("TableName", error.Message, StringComparison.Ordinal);

        await Relays.EnsureTableAsync(_db);
        var outbox = Relays.Outbox();
        await using var connection = _db.Open();
        await using var transaction = connection.BeginTransaction();
        await Assert.ThrowsAsync<ArgumentException>(() => outbox.AddAsync(transaction, "bad topic", new { }));
        await Assert.ThrowsAsync<ArgumentException>(() => outbox.AddAsync(transaction, _topic, new { }, new OutboxMessageOptions { Tag = "a|b" }));
        await Assert.ThrowsAsync<ArgumentException>(() => outbox.AddAsync(transaction, _topic, new { }, new OutboxMessageOptions { Delay = TimeSpan.FromDays(2) }));
        await Assert.ThrowsAsync<ArgumentException>(() => outbox.AddAsync(transaction, _topic, new { }, new OutboxMessageOptions { Keys = [new string('k', 129)] }));
        await Assert.ThrowsAsync<ArgumentException>(() => outbox.AddAsync(transaction, _topic, new { }, new OutboxMessageOptions { Properties = Enumerable.Range(0, 65).ToDictionary(i => "p" + i, i => "v") }));
        await outbox.AddAsync(transaction, _topic, new { }, new OutboxMessageOptions { Keys = [new string('k', 128)], Tag = "ok" }); // the limits themselves are fine
        await transaction.CommitAsync();
        Assert.Equal(1, _db.Count());
    }
}
