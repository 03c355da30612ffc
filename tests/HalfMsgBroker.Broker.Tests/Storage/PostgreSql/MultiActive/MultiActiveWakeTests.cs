using HalfMsgBroker.Delivery;
using HalfMsgBroker.Delivery.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// A commit's notification wakes every long poll of the subscription on a broker, but one claim takes what it announced:
/// the others go back to waiting instead of each running a claim that finds nothing (most of a multi-active broker's
/// transactions were such empty claims).
/// </summary>
public sealed class MultiActiveWakeTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task One_commit_costs_one_claim_however_many_long_polls_it_wakes()
    {
        const int polls = 4;
        var database = await cluster.CreateDatabaseAsync("wake");
        // No safety poll or lease end within the test: only the commit's notification wakes the polls.
        var nodes = MultiActiveNodes.Start(database, 1, new Dictionary<string, string?> { ["Broker:Storage:PostgreSql:DeliverySafetyPoll"] = "01:00:00" });
        try
        {
            using var client = nodes[0].CreateClient();
            await client.Subscribe("inventory", "orders");
            var queue = nodes[0].Services.GetRequiredService<DeliveryRegistry>().Find("inventory", "orders")!;
            var pulls = (PostgreSqlPullDeliveries)nodes[0].Services.GetRequiredService<IPullDeliveries>();

            var receives = Enumerable.Range(0, polls).Select(_ => client.Receive("inventory", "orders", wait: 4)).ToList();
            await Eventually.Until(() => queue.WaitingReceivers == polls, "every long poll waiting");
            var before = pulls.Looks; // one each, empty, before they waited

            var id = await client.Send("orders", new { n = 1 });
            var answers = await Task.WhenAll(receives);

            // One poll got the message; the other three were woken too and ended empty at their wait's end.
            Assert.Equal(id, Assert.Single(answers.SelectMany(a => a)).Str("messageId"));
            Assert.Equal(polls, before);
            Assert.Equal(before + 1, pulls.Looks);
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }
}
