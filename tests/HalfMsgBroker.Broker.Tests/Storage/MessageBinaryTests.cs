using System.Buffers;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using LiteDB;

namespace HalfMsgBroker.Tests.Storage;

public sealed class MessageBinaryTests
{
    [Fact]
    public void Every_field_of_a_message_survives_the_journal_encoding()
    {
        var message = new StoredMessage
        {
            Id = Guid.CreateVersion7(),
            Topic = "orders",
            Tag = "created",
            Keys = ["order-1", "customer-7"],
            Properties = new() { ["source"] = "web", ["région"] = "été" },
            Body = """{"orderId":1,"note":"ünïcode"}"""u8.ToArray(),
            State = MessageState.Committed,
            TransactionId = "tx-1",
            ProducerGroup = "order-service",
            IdempotencyKey = "key-1",
            TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            BornAt = 1_700_000_000_001,
            DeliverAt = 1_700_000_000_002,
            CheckCount = 3,
            NextCheckAt = 1_700_000_000_003,
            LastCheckAt = 1_700_000_000_004,
            LastCheckResult = "http 503",
            ResolvedBy = ResolvedBy.Check,
            ResolvedAt = 1_700_000_000_005,
            FiledCheckAt = 1_700_000_000_006,
            PurgeAt = 1_700_000_000_007,
        };
        message.Deliveries.Add(new StoredDelivery { Group = "inventory", State = DeliveryState.DeadLettered, Attempts = 5, LastError = "timeout", NextAttemptAt = 9, DeadLetteredAt = 10 });
        message.Deliveries.Add(new StoredDelivery { Group = "billing", State = DeliveryState.Acked, Attempts = 1 });

        var buffer = new ArrayBufferWriter<byte>();
        MessageBinary.Write(buffer, message);
        var read = MessageBinary.Read(buffer.WrittenSpan);

        // The BSON document LiteDB would store covers every field, derived index keys included.
        Assert.Equal(BsonSerializer.Serialize(MessageCodec.ToBson(message)), BsonSerializer.Serialize(MessageCodec.ToBson(read)));
        Assert.Equal(message.Properties, read.Properties);
    }

    [Fact]
    public void A_snapshot_does_not_follow_later_changes()
    {
        var message = new StoredMessage { Id = Guid.CreateVersion7(), Topic = "orders", Body = "{}"u8.ToArray(), State = MessageState.Prepared };
        message.Deliveries.Add(new StoredDelivery { Group = "inventory", State = DeliveryState.Pending });
        var snapshot = message.Snapshot();

        message.State = MessageState.Committed;
        message.Deliveries[0].State = DeliveryState.Acked;
        message.Deliveries.Add(new StoredDelivery { Group = "billing" });

        Assert.Equal(MessageState.Prepared, snapshot.State);
        Assert.Equal(DeliveryState.Pending, Assert.Single(snapshot.Deliveries).State);
    }
}
