using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using HalfMsgBroker.Lifecycle;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The journal's encoding of a message: every field of <see cref="StoredMessage"/> in a fixed order,
/// lengths as 32-bit integers, strings as UTF-8 (length −1 for null). Cheaper than building a BSON
/// document for each of a message's three writes: LiteDB gets a document only for the one version an
/// apply stores.
/// </summary>
internal static class MessageBinary
{
    // Version 2 appends the check counters after the deliveries, version 3 the ordering key and commit
    // sequence after them, version 4 a multi-message transaction's members and the transaction a member
    // belongs to; older frames (journals written before) still read, with those zero, null or empty.
    private const byte Version = 4;
    private const byte WithoutTransactionMembers = 3;
    private const byte WithoutOrdering = 2;
    private const byte WithoutCheckCounters = 1;

    public static void Write(IBufferWriter<byte> to, StoredMessage m)
    {
        var w = new Writer(to);
        w.Byte(Version);
        w.Guid(m.Id);
        w.String(m.Topic);
        w.String(m.Tag);
        w.Int(m.Keys.Length);
        foreach (var key in m.Keys) w.String(key);
        if (m.Properties is null) w.Int(-1);
        else
        {
            w.Int(m.Properties.Count);
            foreach (var (name, value) in m.Properties)
            {
                w.String(name);
                w.String(value);
            }
        }
        w.Bytes(m.Body);
        w.Int((int)m.State);
        w.String(m.TransactionId);
        w.String(m.ProducerGroup);
        w.String(m.IdempotencyKey);
        w.String(m.TraceParent);
        w.Long(m.BornAt);
        w.Long(m.DeliverAt);
        w.Int(m.CheckCount);
        w.Long(m.NextCheckAt);
        w.Long(m.LastCheckAt);
        w.String(m.LastCheckResult);
        w.Int((int)m.ResolvedBy);
        w.Long(m.ResolvedAt);
        w.Long(m.FiledCheckAt);
        w.Long(m.PurgeAt);
        w.Int(m.Deliveries.Count);
        foreach (var d in m.Deliveries)
        {
            w.String(d.Group);
            w.Int((int)d.State);
            w.Int(d.Attempts);
            w.String(d.LastError);
            w.Long(d.NextAttemptAt);
            w.Long(d.DeadLetteredAt);
        }
        w.Int(m.UnreachableCount);
        w.Int(m.UnreachableStreak);
        w.Int(m.UnknownCount);
        w.String(m.OrderingKey);
        w.Long(m.CommitSeq);
        w.Int(m.Members.Length);
        foreach (var member in m.Members) w.Guid(member);
        w.String(m.InTransaction);
    }

    public static StoredMessage Read(ReadOnlySpan<byte> data)
    {
        var r = new Reader(data);
        var version = r.Byte();
        if (version is not (Version or WithoutTransactionMembers or WithoutOrdering or WithoutCheckCounters)) throw new InvalidDataException("Unknown journal message encoding.");
        var id = r.Guid();
        var topic = r.String()!;
        var tag = r.String();
        var keys = new string[r.Int()];
        for (var i = 0; i < keys.Length; i++) keys[i] = r.String()!;
        Dictionary<string, string>? properties = null;
        var propertyCount = r.Int();
        if (propertyCount >= 0)
        {
            properties = new Dictionary<string, string>(propertyCount, StringComparer.Ordinal);
            for (var i = 0; i < propertyCount; i++) properties[r.String()!] = r.String()!;
        }
        var m = new StoredMessage
        {
            Id = id,
            Topic = topic,
            Tag = tag,
            Keys = keys,
            Properties = properties,
            Body = r.Bytes(),
            State = (MessageState)r.Int(),
            TransactionId = r.String(),
            ProducerGroup = r.String(),
            IdempotencyKey = r.String(),
            TraceParent = r.String(),
            BornAt = r.Long(),
            DeliverAt = r.Long(),
            CheckCount = r.Int(),
            NextCheckAt = r.Long(),
            LastCheckAt = r.Long(),
            LastCheckResult = r.String(),
            ResolvedBy = (ResolvedBy)r.Int(),
            ResolvedAt = r.Long(),
            FiledCheckAt = r.Long(),
            PurgeAt = r.Long(),
        };
        var deliveries = r.Int();
        for (var i = 0; i < deliveries; i++)
        {
            m.Deliveries.Add(new StoredDelivery
            {
                Group = r.String()!,
                State = (DeliveryState)r.Int(),
                Attempts = r.Int(),
                LastError = r.String(),
                NextAttemptAt = r.Long(),
                DeadLetteredAt = r.Long(),
            });
        }
        if (version >= WithoutOrdering)
        {
            m.UnreachableCount = r.Int();
            m.UnreachableStreak = r.Int();
            m.UnknownCount = r.Int();
        }
        if (version >= WithoutTransactionMembers)
        {
            m.OrderingKey = r.String();
            m.CommitSeq = r.Long();
        }
        if (version >= Version)
        {
            var members = r.Int();
            if (members > 0)
            {
                m.Members = new Guid[members];
                for (var i = 0; i < members; i++) m.Members[i] = r.Guid();
            }
            m.InTransaction = r.String();
        }
        if (!r.AtEnd) throw new InvalidDataException("A journal message record is longer than the message it holds.");
        return m;
    }

    private readonly ref struct Writer(IBufferWriter<byte> to)
    {
        public void Byte(byte value)
        {
            to.GetSpan(1)[0] = value;
            to.Advance(1);
        }

        public void Int(int value)
        {
            BinaryPrimitives.WriteInt32LittleEndian(to.GetSpan(4), value);
            to.Advance(4);
        }

        public void Long(long value)
        {
            BinaryPrimitives.WriteInt64LittleEndian(to.GetSpan(8), value);
            to.Advance(8);
        }

        public void Guid(Guid value)
        {
            value.TryWriteBytes(to.GetSpan(16));
            to.Advance(16);
        }

        public void String(string? value)
        {
            if (value is null)
            {
                Int(-1);
                return;
            }
            var span = to.GetSpan(4 + Encoding.UTF8.GetMaxByteCount(value.Length));
            var length = Encoding.UTF8.GetBytes(value, span[4..]);
            BinaryPrimitives.WriteInt32LittleEndian(span, length);
            to.Advance(4 + length);
        }

        public void Bytes(byte[] value)
        {
            Int(value.Length);
            value.CopyTo(to.GetSpan(value.Length));
            to.Advance(value.Length);
        }
    }

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _data = data;

        public readonly bool AtEnd => _data.IsEmpty;

        public byte Byte()
        {
            var value = _data[0];
            _data = _data[1..];
            return value;
        }

        public int Int()
        {
            var value = BinaryPrimitives.ReadInt32LittleEndian(_data);
            _data = _data[4..];
            return value;
        }

        public long Long()
        {
            var value = BinaryPrimitives.ReadInt64LittleEndian(_data);
            _data = _data[8..];
            return value;
        }

        public Guid Guid()
        {
            var value = new Guid(_data[..16]);
            _data = _data[16..];
            return value;
        }

        public string? String()
        {
            var length = Int();
            if (length < 0) return null;
            var value = Encoding.UTF8.GetString(_data[..length]);
            _data = _data[length..];
            return value;
        }

        public byte[] Bytes()
        {
            var length = Int();
            var value = _data[..length].ToArray();
            _data = _data[length..];
            return value;
        }
    }
}
