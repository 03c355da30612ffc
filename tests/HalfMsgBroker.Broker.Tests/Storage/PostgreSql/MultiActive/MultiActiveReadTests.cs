using System.Net;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// A request's read takes no row lock: only the writer's lookups do. A GET that read <c>FOR UPDATE</c> waited for any
/// batch holding the row and, queued on the row's tuple lock, could join a deadlock between two brokers' batches and
/// answer 503 (seen in CI while three brokers ran check-back).
/// </summary>
public sealed class MultiActiveReadTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task Reading_a_transaction_does_not_wait_for_a_row_another_broker_holds()
    {
        var database = await cluster.CreateDatabaseAsync("reads");
        var nodes = MultiActiveNodes.Start(database, 1);
        try
        {
            using var client = nodes[0].CreateClient();
            await client.SendHalf("orders", "held");

            // Another broker's batch in flight: its transaction holds the message's row.
            await using var other = new NpgsqlConnection(database);
            await other.OpenAsync();
            await using var batch = await other.BeginTransactionAsync();
            await using (var lockRow = new NpgsqlCommand("SELECT id FROM halfmsg_messages FOR UPDATE", other, batch))
            {
                Assert.NotNull(await lockRow.ExecuteScalarAsync());
            }

            var read = client.Get("/v1/transactions/held");
            var first = await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(20)));
            var answered = first == read;
            await batch.RollbackAsync();
            Assert.True(answered, "the read waited for the row lock another broker's batch holds");
            var answer = await read;
            Assert.True(answer.Status == HttpStatusCode.OK, answer.ToString());
            Assert.Equal("prepared", answer.Json.Str("state"));
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }
}
