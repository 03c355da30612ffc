using HalfMsgBroker.Tests.Shared;
using Npgsql;

namespace HalfMsgBroker.Client.Tests;

/// <summary>The outbox on a real PostgreSQL 15: the same DDL and statements as on SQLite, with real row locks between two relays.</summary>
[Collection(BrokerCollection.Name)]
public sealed class OutboxPostgresTests(BrokerFixture broker, PostgresCluster postgres) : IClassFixture<PostgresCluster>
{
    private readonly string _topic = Names.Unique("pg-payments");

    private NpgsqlConnection Create() => new(postgres.ConnectionString);

    private async Task<long> ScalarAsync(string sql)
    {
        await using var connection = Create();
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [PostgresFact]
    public Task Of_two_relays_that_selected_the_same_rows_on_PostgreSQL_only_the_first_to_lease_them_gets_them() =>
        ClaimRace.PlayAsync(Create, _topic);

    [PostgresFact]
    public async Task Two_relays_and_a_dead_relays_lease_on_PostgreSQL_send_each_committed_row_once()
    {
        var outbox = Relays.Outbox();
        await using (var connection = Create())
        {
            await outbox.EnsureCreatedAsync(connection);
            await outbox.EnsureCreatedAsync(connection); // idempotent
        }

        // 60 committed writes, one rolled back, all in the app's own PostgreSQL transactions.
        var rows = new List<string>();
        await using (var connection = Create())
        {
            await connection.OpenAsync();
            for (var i = 0; i <= 60; i++)
            {
                await using var transaction = await connection.BeginTransactionAsync();
                var row = await outbox.AddAsync(transaction, _topic, new { payment = i }, new OutboxMessageOptions { Keys = ["pg-pay-" + i], Properties = new Dictionary<string, string> { ["n"] = "" + i } });
                if (i == 0)
                {
                    await transaction.RollbackAsync();
                    continue;
                }

                await transaction.CommitAsync();
                rows.Add(row);
            }
        }

        Assert.Equal(60, await ScalarAsync($"SELECT COUNT(*) FROM halfmsg_outbox WHERE topic = '{_topic}'"));

        // A relay that died right after claiming the first ten: its lease holds them for two more seconds.
        var deadLeaseUntil = DateTimeOffset.UtcNow.AddSeconds(2).ToUnixTimeMilliseconds();
        var dead = rows.Take(10).ToList();
        Assert.Equal(10, await ScalarAsync(
            $"WITH claimed AS (UPDATE halfmsg_outbox SET lease_owner = 'dead/1', lease_until = {deadLeaseUntil} " +
            $"WHERE id IN ({string.Join(", ", dead.Select(d => $"'{d}'"))}) RETURNING 1) SELECT COUNT(*) FROM claimed"));

        var log = new SendLog();
        await using var clientA = new RelayClient(broker.BaseAddress, log, "a");
        await using var clientB = new RelayClient(broker.BaseAddress, log, "b");
        // Both take part however the two are scheduled, as in the SQLite test: b sends nothing until a has claimed a
        // batch, and a's sends wait for b's first answer. Without it, under load one relay emptied the table alone.
        clientB.HoldSendsUntil = clientA.SendStarted;
        clientA.HoldSendsUntil = clientB.Answered;
        var options = Relays.FastOptions("relay") with { BatchSize = 5, MaxConcurrentSends = 4 };
        var relays = new[] { Relays.Create(clientA, Create, options with { RelayId = "relay-a" }), Relays.Create(clientB, Create, options with { RelayId = "relay-b" }) };
        await Task.WhenAll(relays.Select(r => r.StartAsync(CancellationToken.None)));
        try
        {
            await Eventually.UntilAsync(() => ScalarAsync("SELECT COUNT(*) FROM halfmsg_outbox"), n => n == 0, "the relays to empty the table", TimeSpan.FromSeconds(60));
        }
        finally
        {
            await Task.WhenAll(relays.Select(r => r.StopAsync(CancellationToken.None)));
        }

        Assert.Equal(rows.Order(), log.Sends.Keys.Order());
        Assert.All(rows, row => Assert.Equal(1, log.Sends[row]));
        Assert.All(rows, row => Assert.Equal(1, log.MostInFlight[row]));
        Assert.All(log.Answers, a => Assert.Equal(201, a.Status));
        Assert.All(log.Answers.Where(a => dead.Contains(a.Key)), a => Assert.True(a.At.ToUnixTimeMilliseconds() >= deadLeaseUntil, "a row was sent while another relay's lease held it"));
        Assert.Contains(log.Answers, a => a.Relay == "a");
        Assert.Contains(log.Answers, a => a.Relay == "b");
        Assert.Single((await broker.Api.FindMessagesAsync(key: "pg-pay-60", topic: _topic)).Messages);
        Assert.Empty((await broker.Api.FindMessagesAsync(key: "pg-pay-0", topic: _topic)).Messages);
    }
}
