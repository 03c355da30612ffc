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
                var ended = await Eventually.Until(() => clients[1].Transaction(tx), t => t.Str("state") != "prepared", $"{tx} to run out of checks", TimeSpan.FromSeconds(60));
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
}
