using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// Three active brokers read the same due checks: each check is begun by one of them only (the row's lock, and the lease
/// the first one writes), so a producer gets one call per check, not one per broker (CAP #1797).
/// </summary>
public sealed class MultiActiveCheckBackTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task Each_transaction_gets_one_call_per_check_across_three_brokers_and_max_checks_still_ends_it()
    {
        const int maxChecks = 4;
        const int transactions = 15;
        var database = await cluster.CreateDatabaseAsync("checks");
        var nodes = MultiActiveNodes.Start(database, 3, new Dictionary<string, string?> { ["Broker:Transactions:MaxChecks"] = $"{maxChecks}" });
        await using var producer = await TestReceiver.Answering(200, "{\"state\":\"unknown\"}");
        try
        {
            var clients = nodes.Select(n => n.CreateClient()).ToList();
            Assert.True((await clients[0].Put("/v1/producer-groups/order-service", new { checkUrl = producer.Url })).Status is System.Net.HttpStatusCode.Created);
            var ids = Enumerable.Range(0, transactions).Select(i => $"unknown-{i}").ToList();
            for (var i = 0; i < ids.Count; i++) await clients[i % clients.Count].SendHalf("orders", ids[i]);

            foreach (var tx in ids)
            {
                var answer = await Eventually.Until(() => clients[1].Get($"/v1/transactions/{tx}"), a => a.Status != System.Net.HttpStatusCode.OK || a.Json.Str("state") != "prepared",
                    $"{tx} to run out of checks", TimeSpan.FromSeconds(60));
                Assert.True(answer.Status == System.Net.HttpStatusCode.OK, answer.ToString());
                var ended = answer.Json;
                Assert.Equal("rolledBack", ended.Str("state"));
                Assert.Equal("checkExhausted", ended.Str("resolvedBy"));
                Assert.Equal(maxChecks, ended.Int("checkCount"));
            }

            var calls = producer.Requests.GroupBy(r => r.Body.Str("transactionId")).ToDictionary(g => g.Key, g => g.Select(r => r.Body.Int("checkTimes")).Order().ToList());
            Assert.Equal(ids.Order(StringComparer.Ordinal), calls.Keys.Order(StringComparer.Ordinal));
            // One call per check number: a second broker beginning the same check would repeat a number.
            foreach (var (tx, numbers) in calls) Assert.True(numbers.SequenceEqual(Enumerable.Range(1, maxChecks)), $"{tx} was called with checks {string.Join(", ", numbers)}");
            foreach (var client in clients) client.Dispose();
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }

    [PostgresFact]
    public async Task A_check_made_due_sooner_than_the_others_would_look_is_announced_and_one_due_later_is_not()
    {
        var database = await cluster.CreateDatabaseAsync("checkdue");
        var nodes = MultiActiveNodes.Start(database, 1, new Dictionary<string, string?>
        {
            ["Broker:Transactions:CheckAfter"] = "00:10:00",
            ["Broker:Transactions:IdleScanInterval"] = "00:00:02",
        });
        try
        {
            using var client = nodes[0].CreateClient();
            await using var listener = new Npgsql.NpgsqlConnection(database);
            await listener.OpenAsync();
            var heard = new System.Collections.Concurrent.ConcurrentQueue<long>();
            listener.Notification += (_, e) => heard.Enqueue(long.Parse(e.Payload, System.Globalization.CultureInfo.InvariantCulture));
            await using (var listen = new Npgsql.NpgsqlCommand("LISTEN halfmsg_checks", listener)) await listen.ExecuteNonQueryAsync();

            // Due in ten minutes: every broker finds it by re-reading the index long before then.
            await client.SendHalf("orders", "later");
            var asked = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            Assert.Equal(System.Net.HttpStatusCode.OK, (await client.Post("/v1/transactions/later/check")).Status);
            var deadline = DateTime.UtcNow + Eventually.DefaultTimeout;
            while (heard.IsEmpty && DateTime.UtcNow < deadline) await listener.WaitAsync(TimeSpan.FromMilliseconds(200));

            // The first announcement is the check brought forward, not the half message due in ten minutes.
            Assert.True(heard.TryPeek(out var due), "no announcement of the check brought forward");
            Assert.InRange(due, asked - 1000, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }
}
