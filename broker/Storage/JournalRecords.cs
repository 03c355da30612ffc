using System.Buffers;
using System.Buffers.Binary;
using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The records inside one journal frame: kind (u8), collection (u8), length (u32), then the record:
/// a message in <see cref="MessageBinary"/>, anything else as the BSON document LiteDB will store.
/// Reading a frame rebuilds the changes it made.
/// </summary>
internal static class JournalRecords
{
    private enum Kind : byte
    {
        /// <summary>A message as a BSON document (journals written before <see cref="PutMessageBinary"/>).</summary>
        PutMessageBson = 1,
        DeleteMessage = 2,
        PutDocument = 3,
        DeleteDocument = 4,
        TopicDeltas = 5,
        PutMessageBinary = 6,
    }

    private const int HeaderBytes = 6;

    public static void PutMessage(ArrayBufferWriter<byte> to, StoredMessage message)
    {
        var header = to.GetSpan(HeaderBytes);
        header[0] = (byte)Kind.PutMessageBinary;
        header[1] = 0;
        to.Advance(HeaderBytes);
        var start = to.WrittenCount;
        MessageBinary.Write(to, message);
        // The length goes in front once known; the header sits in the same buffer, before the record.
        var length = to.WrittenCount - start;
        BinaryPrimitives.WriteUInt32LittleEndian(System.Runtime.InteropServices.MemoryMarshal.AsMemory(to.WrittenMemory).Span[(start - 4)..], (uint)length);
    }

    public static void DeleteMessage(IBufferWriter<byte> to, Guid id, string? uniqueKey)
    {
        var doc = new BsonDocument { ["_id"] = id };
        if (uniqueKey is not null) doc[MessageCodec.UniqueField] = uniqueKey;
        Write(to, Kind.DeleteMessage, 0, doc);
    }

    public static void PutDocument(IBufferWriter<byte> to, DocumentCollection collection, BsonDocument doc) =>
        Write(to, Kind.PutDocument, collection, doc);

    public static void DeleteDocument(IBufferWriter<byte> to, DocumentCollection collection, string id) =>
        Write(to, Kind.DeleteDocument, collection, new BsonDocument { ["_id"] = id });

    public static void TopicDeltas(IBufferWriter<byte> to, IReadOnlyDictionary<string, long> deltas)
    {
        var doc = new BsonDocument();
        foreach (var (topic, delta) in deltas)
        {
            if (delta != 0) doc[topic] = delta;
        }
        if (doc.Count > 0) Write(to, Kind.TopicDeltas, 0, doc);
    }

    /// <summary>How many records (changes) one frame holds, read from the record headers alone.</summary>
    public static int Count(ReadOnlySpan<byte> payload)
    {
        var count = 0;
        while (payload.Length >= HeaderBytes)
        {
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(payload[2..]);
            if (length > payload.Length - HeaderBytes) break;
            payload = payload[(HeaderBytes + length)..];
            count++;
        }
        return count;
    }

    /// <summary>Replays one frame's records into <paramref name="into"/>. Nothing is known to be absent from LiteDB, so every put may update.</summary>
    public static void Read(ReadOnlySpan<byte> payload, ChangeSet into)
    {
        while (payload.Length >= HeaderBytes)
        {
            var kind = (Kind)payload[0];
            var collection = (DocumentCollection)payload[1];
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(payload[2..]);
            var record = payload.Slice(HeaderBytes, length);
            payload = payload[(HeaderBytes + length)..];
            if (kind == Kind.PutMessageBinary)
            {
                var message = MessageBinary.Read(record);
                into.PutMessage(message, inserted: false, MessageCodec.ProducerChosenKeyOf(message));
                continue;
            }
            var doc = BsonSerializer.Deserialize(record.ToArray());
            switch (kind)
            {
                case Kind.PutMessageBson:
                    var old = MessageCodec.FromBson(doc);
                    into.PutMessage(old, inserted: false, MessageCodec.ProducerChosenKeyOf(old));
                    break;
                case Kind.DeleteMessage:
                    into.DeleteMessage(doc["_id"].AsGuid, doc.TryGetValue(MessageCodec.UniqueField, out var key) ? key.AsString : null);
                    break;
                case Kind.PutDocument:
                    into.Documents[(collection, doc["_id"].AsString)] = doc;
                    break;
                case Kind.DeleteDocument:
                    into.Documents[(collection, doc["_id"].AsString)] = null;
                    break;
                case Kind.TopicDeltas:
                    foreach (var (topic, delta) in doc) into.AddTopicDelta(topic, delta.AsInt64);
                    break;
                default:
                    throw new InvalidDataException($"Unknown journal record kind {(byte)kind}.");
            }
        }
    }

    private static void Write(IBufferWriter<byte> to, Kind kind, DocumentCollection collection, BsonDocument doc)
    {
        var bytes = BsonSerializer.Serialize(doc);
        var span = to.GetSpan(HeaderBytes + bytes.Length);
        span[0] = (byte)kind;
        span[1] = (byte)collection;
        BinaryPrimitives.WriteUInt32LittleEndian(span[2..], (uint)bytes.Length);
        bytes.CopyTo(span[HeaderBytes..]);
        to.Advance(HeaderBytes + bytes.Length);
    }
}
