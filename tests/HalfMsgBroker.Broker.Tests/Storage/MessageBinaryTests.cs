using System.Buffers;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using LiteDB;

namespace HalfMsgBroker.Tests.Storage;

[Trait("Storage", "LiteDb")]
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
            UnreachableCount = 11,
            UnreachableStreak = 4,
            UnknownCount = 2,
            OrderingKey = "customer-7",
            CommitSeq = 1_700_000_000_005_001,
            Members = [Guid.CreateVersion7(), Guid.CreateVersion7()],
            InTransaction = "tx-0",
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
    public void Version_1_2_and_3_frames_written_before_the_check_counters_ordering_keys_and_transaction_members_still_read()
    {
        var message = new StoredMessage
        {
            Id = Guid.CreateVersion7(), Topic = "orders", Body = "{}"u8.ToArray(), State = MessageState.Prepared,
            TransactionId = "tx-1", CheckCount = 2, LastCheckResult = "timeout",
        };
        message.Deliveries.Add(new StoredDelivery { Group = "inventory", State = DeliveryState.Pending });
        var buffer = new ArrayBufferWriter<byte>();
        MessageBinary.Write(buffer, message);
        var current = buffer.WrittenSpan.ToArray();
        Assert.Equal(4, current[0]);

        // Version 3 is version 4 without the members (a count, 4 bytes, here 0) and the transaction (a string, 4 bytes, here null).
        var v3 = current[..^8];
        v3[0] = 3;
        var read3 = MessageBinary.Read(v3);
        Assert.Empty(read3.Members);
        Assert.Null(read3.InTransaction);
        Assert.Equal(BsonSerializer.Serialize(MessageCodec.ToBson(message)), BsonSerializer.Serialize(MessageCodec.ToBson(read3)));

        // Version 2 is version 3 without the null ordering key (4 bytes) and the commit sequence (8).
        var v2 = v3[..^12];
        v2[0] = 2;
        var read2 = MessageBinary.Read(v2);
        Assert.Equal(BsonSerializer.Serialize(MessageCodec.ToBson(message)), BsonSerializer.Serialize(MessageCodec.ToBson(read2)));

        // Version 1 is version 2 without the three counters at the end (4 bytes each).
        var old = v2[..^12];
        old[0] = 1;
        var read = MessageBinary.Read(old);

        Assert.Equal((0, 0, 0), (read.UnreachableCount, read.UnreachableStreak, read.UnknownCount));
        Assert.Equal(BsonSerializer.Serialize(MessageCodec.ToBson(message)), BsonSerializer.Serialize(MessageCodec.ToBson(read)));
        old[0] = 5;
        Assert.Throws<InvalidDataException>(() => MessageBinary.Read(old));
    }

    [Fact]
    public void A_version_2_frame_written_before_ordering_keys_still_reads()
    {
        var message = new StoredMessage
        {
            Id = Guid.CreateVersion7(), Topic = "orders", Body = "{}"u8.ToArray(), State = MessageState.Committed, UnknownCount = 3,
        };
        message.Deliveries.Add(new StoredDelivery { Group = "inventory", State = DeliveryState.Pending });
        var buffer = new ArrayBufferWriter<byte>();
        MessageBinary.Write(buffer, message);

        // Version 2 is version 4 without the ordering key (null: 4 bytes), the commit sequence (8), the
        // member count (4) and the null transaction (4) at the end.
        var old = buffer.WrittenSpan.ToArray()[..^20];
        old[0] = 2;
        var read = MessageBinary.Read(old);

        Assert.Equal((null, 0L, 3), (read.OrderingKey, read.CommitSeq, read.UnknownCount));
        Assert.Equal(BsonSerializer.Serialize(MessageCodec.ToBson(message)), BsonSerializer.Serialize(MessageCodec.ToBson(read)));
    }

    [Fact]
    public void A_document_stored_before_the_check_counters_reads_with_them_zero()
    {
        var message = new StoredMessage
        {
            Id = Guid.CreateVersion7(), Topic = "orders", Body = "{}"u8.ToArray(), State = MessageState.Prepared,
            TransactionId = "tx-1", CheckCount = 2, UnreachableCount = 5, UnreachableStreak = 5, UnknownCount = 1,
        };
        var doc = MessageCodec.ToBson(message);
        Assert.True(doc.Remove("ur") && doc.Remove("us") && doc.Remove("uk"));

        var read = MessageCodec.FromBson(doc);

        Assert.Equal((0, 0, 0), (read.UnreachableCount, read.UnreachableStreak, read.UnknownCount));
        Assert.Equal((message.Id, 2, "tx-1"), (read.Id, read.CheckCount, read.TransactionId));
        var roundTrip = MessageCodec.FromBson(MessageCodec.ToBson(message));
        Assert.Equal((5, 5, 1), (roundTrip.UnreachableCount, roundTrip.UnreachableStreak, roundTrip.UnknownCount));
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
