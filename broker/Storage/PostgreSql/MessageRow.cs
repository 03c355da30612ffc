using System.Buffers;
using HalfMsgBroker.Lifecycle;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// One message as a <c>halfmsg_messages</c> row: the whole message in <see cref="MessageBinary"/>'s
/// encoding, and the columns that index it, derived exactly as LiteDB's keys are (<see cref="MessageCodec"/>).
/// Encoded when the writer stores the message, as the journal does, so a later change to the
/// writer's cached object does not reach a batch already built.
/// </summary>
internal sealed record MessageRow(
    Guid Id, string Topic, short State, string? TransactionId, string? ProducerGroup, string? UniqueKey,
    long? CheckAt, bool Open, long? PurgeAt, long? CommittedAt, string[] Keys, byte[] Data)
{
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    public static MessageRow Of(StoredMessage m)
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(4096);
        buffer.ResetWrittenCount();
        MessageBinary.Write(buffer, m);

        // The due-time queue of MessageCodec.QueueKeyOf: a message waits in at most one.
        long? checkAt = null, purgeAt = null;
        var open = false;
        if (m.State == MessageState.Prepared)
        {
            // A multi-message transaction is checked through its first message; the others wait in no queue.
            if (m.InTransaction is null) checkAt = m.NextCheckAt;
        }
        else if (DeliveryLifecycle.HasOpenDeliveries(m))
        {
            open = true;
        }
        else if (m.PurgeAt != 0)
        {
            purgeAt = m.PurgeAt;
        }
        long? committedAt = m.State == MessageState.Committed && m.ResolvedAt != 0 ? m.ResolvedAt : null;
        return new MessageRow(m.Id, m.Topic, (short)m.State, m.TransactionId, m.ProducerGroup, MessageCodec.ProducerChosenKeyOf(m),
            checkAt, open, purgeAt, committedAt, m.Keys, buffer.WrittenSpan.ToArray());
    }

    public StoredMessage Decode() => MessageBinary.Read(Data);
}
