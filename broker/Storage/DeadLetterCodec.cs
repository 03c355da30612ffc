using HalfMsgBroker.Lifecycle;
using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>One consumer group's dead letter of one message, as the dead-letter index knows it.</summary>
public readonly record struct DeadLetterRef(string Group, string Topic, Guid MessageId);

/// <summary>One page of a listing in id order: <see cref="Next"/> is the cursor for the page after it (its last id), null on the last page.</summary>
public sealed record StorePage<T>(IReadOnlyList<T> Items, Guid? Next);

/// <summary>
/// The <c>deadLetters</c> collection: one small document per dead letter, next to the message that
/// holds the delivery's state. The writer puts or deletes it whenever a delivery enters or leaves
/// <see cref="DeliveryState.DeadLettered"/> (<see cref="IMessageLog.PutDeadLetter"/>), in the same
/// journal frame and LiteDB transaction as the message. Its keys carry everything a listing or count
/// needs, so those read the index alone (LiteDB counts and projects key-only on a single-field
/// index, never on the multi-key <c>lk</c>):
/// <c>_id</c> = group ␊ topic ␊ id (a group's dead letters of one topic, in id order: counts, topic listings);
/// <c>g</c> = group ␊ id (all of a group's, in id order); <c>m</c> = the message id (a replay re-derives
/// a message's entries); <c>e</c> = when it was dead-lettered (expiry, earliest first).
/// Names cannot hold a line feed (<see cref="Names.IsValidName"/>), so it separates them exactly.
/// </summary>
internal static class DeadLetterCodec
{
    public const string GroupField = "g";
    public const string MessageField = "m";
    public const string DeadLetteredAtField = "e";

    public static string Id(DeadLetterRef r) => TopicPrefix(r.Group, r.Topic) + MessageCodec.IdKey(r.MessageId);

    public static string GroupPrefix(string group) => group + "\n";

    public static string TopicPrefix(string group, string topic) => group + "\n" + topic + "\n";

    public static BsonDocument ToBson(DeadLetterRef r, long deadLetteredAt) => new()
    {
        ["_id"] = Id(r),
        [GroupField] = GroupPrefix(r.Group) + MessageCodec.IdKey(r.MessageId),
        [MessageField] = r.MessageId,
        [DeadLetteredAtField] = deadLetteredAt,
    };

    public static DeadLetterRef FromId(string id)
    {
        var parts = id.Split('\n');
        return new DeadLetterRef(parts[0], parts[1], IdOfEntry(id));
    }

    /// <summary>The message id that ends an index entry (its last 32 characters).</summary>
    public static Guid IdOfEntry(string entry) => Guid.ParseExact(entry.AsSpan(entry.Length - 32), "N");

    /// <summary>The dead letters <paramref name="m"/> holds now.</summary>
    public static IEnumerable<(DeadLetterRef Ref, long DeadLetteredAt)> Of(StoredMessage m)
    {
        foreach (var d in m.Deliveries)
        {
            if (d.State == DeliveryState.DeadLettered) yield return (new DeadLetterRef(d.Group, m.Topic, m.Id), d.DeadLetteredAt);
        }
    }
}
