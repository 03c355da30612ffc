using System.Net;
using HalfMsgBroker.Delivery.PostgreSql;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// A pull ack with many active brokers is one transaction (<see cref="AckLeases"/>): the lease is checked and the ack
/// stored together, so a stale handle is refused, and an ack the store refuses gives up nothing.
/// </summary>
public sealed class MultiActiveAckTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task An_ack_on_another_node_refuses_a_handle_whose_lease_ran_out_and_acks_the_current_one()
    {
        var nodes = MultiActiveNodes.Start(await cluster.CreateDatabaseAsync("ackstale"), 2);
        try
        {
            using var one = nodes[0].CreateClient();
            using var two = nodes[1].CreateClient();
            await one.Subscribe("g", "orders");
            var id = await one.Send("orders");

            var first = Assert.Single(await one.Receive("g", "orders", invisible: 1))!;
            // Its lease runs out and the delivery is leased again, on the other node.
            var second = await Eventually.Until(async () => await two.Receive("g", "orders", wait: 1), m => m.Count == 1, "received again once the lease ran out");
            var (stale, current) = (first.Str("receiptHandle"), second[0]!.Str("receiptHandle"));
            Assert.Equal(id, second[0]!.Str("messageId"));

            var refused = await two.Ack("g", stale);
            Assert.Equal(HttpStatusCode.OK, refused.Status);
            Assert.Equal(0, refused.Json["acked"]!.GetValue<int>());
            Assert.Equal(stale, Assert.Single(refused.Json["stale"]!.AsArray())!.GetValue<string>());
            Assert.Equal("inFlight", await one.DeliveryState(id, "g"));

            var acked = await one.Ack("g", stale, current);
            Assert.Equal(1, acked.Json["acked"]!.GetValue<int>());
            Assert.Equal(stale, Assert.Single(acked.Json["stale"]!.AsArray())!.GetValue<string>());
            Assert.Equal("acked", await two.DeliveryState(id, "g"));
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }

    [PostgresFact]
    public async Task An_ack_the_store_refuses_gives_up_no_lease_and_the_same_handle_acks_once_the_store_takes_it()
    {
        var nodes = MultiActiveNodes.Start(await cluster.CreateDatabaseAsync("ackrefused"), 2);
        try
        {
            using var one = nodes[0].CreateClient();
            using var two = nodes[1].CreateClient();
            await one.Subscribe("g", "orders");
            var id = await one.Send("orders");
            var handle = Assert.Single(await one.Receive("g", "orders"))!.Str("receiptHandle");

            var refuse = true;
            nodes[1].Services.GetRequiredService<StoreWriter>().CommandFault = command =>
            {
                if (Volatile.Read(ref refuse) && command is AckLeases) throw new IOException("disk refused the write (test)");
            };
            var failed = await two.Ack("g", handle);
            Assert.NotEqual(HttpStatusCode.OK, failed.Status);

            // Still leased to its consumer: no other receive gets it, and its handle still acks.
            Assert.Empty(await two.Receive("g", "orders"));
            Assert.Equal("inFlight", await one.DeliveryState(id, "g"));
            Volatile.Write(ref refuse, false);
            var acked = await two.Ack("g", handle);
            Assert.Equal(HttpStatusCode.OK, acked.Status);
            Assert.Equal(1, acked.Json["acked"]!.GetValue<int>());
            Assert.Empty(acked.Json["stale"]!.AsArray());
            Assert.Equal("acked", await one.DeliveryState(id, "g"));
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }
}
