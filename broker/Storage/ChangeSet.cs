using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>The other documents the journal carries besides messages.</summary>
internal enum DocumentCollection : byte
{
    ProducerGroups = 1,
    Subscriptions = 2,
    DeadLetters = 3,
}

/// <summary>The newest unapplied version of one message (a snapshot nobody changes): <see cref="Message"/> null means deleted.</summary>
internal sealed class MessageChange
{
    public StoredMessage? Message { get; set; }

    /// <summary>Whether LiteDB holds (or, once earlier changes are applied, will hold) the message: update, not insert.</summary>
    public bool InDb { get; init; }

    /// <summary>The message's unique key when it is a transactionId or Idempotency-Key (the ones checked for duplicates).</summary>
    public string? UniqueKey { get; init; }
}

/// <summary>
/// Changes coalesced per document: a message written three times (half, commit, ack) between two
/// applies reaches LiteDB as one insert. The store keeps three of these: the writer's batch in
/// progress, the changes journaled since the last apply, and the ones being applied now.
/// </summary>
internal sealed class ChangeSet
{
    public Dictionary<Guid, MessageChange> Messages { get; } = [];
    public Dictionary<string, Guid> ByUniqueKey { get; } = new(StringComparer.Ordinal);
    public Dictionary<(DocumentCollection Collection, string Id), BsonDocument?> Documents { get; } = [];
    public Dictionary<string, long> TopicDeltas { get; } = new(StringComparer.Ordinal);

    /// <summary>The last journal frame these changes include.</summary>
    public long LastSeq { get; set; }

    public int Count => Messages.Count + Documents.Count;

    public bool IsEmpty => Count == 0 && TopicDeltas.Count == 0;

    public void PutMessage(StoredMessage snapshot, bool inserted, string? uniqueKey)
    {
        var id = snapshot.Id;
        if (Messages.TryGetValue(id, out var change))
        {
            change.Message = snapshot;
            return;
        }
        Add(id, snapshot, inDb: !inserted, uniqueKey);
    }

    /// <summary>
    /// A deleted message stays as a tombstone even when LiteDB never saw it (applying skips those):
    /// its unique key must keep answering "deleted", or a lookup could fall through to an older,
    /// deleted holder of the same key that LiteDB still has.
    /// </summary>
    public void DeleteMessage(Guid id, string? uniqueKey, bool inDb = true)
    {
        if (Messages.TryGetValue(id, out var change))
        {
            change.Message = null;
            return;
        }
        Add(id, null, inDb, uniqueKey);
    }

    public void AddTopicDelta(string topic, long delta) => TopicDeltas[topic] = TopicDeltas.GetValueOrDefault(topic) + delta;

    /// <summary>Folds <paramref name="later"/> (changes made after these) into this set.</summary>
    public void MergeFrom(ChangeSet later)
    {
        foreach (var (id, change) in later.Messages)
        {
            // An entry already here keeps its InDb: it knows whether LiteDB will hold the message.
            if (Messages.TryGetValue(id, out var existing)) existing.Message = change.Message;
            else Add(id, change.Message, change.InDb, change.UniqueKey);
        }
        foreach (var (key, doc) in later.Documents) Documents[key] = doc;
        foreach (var (topic, delta) in later.TopicDeltas) AddTopicDelta(topic, delta);
        LastSeq = later.LastSeq;
    }

    /// <summary>True when these changes decide what the message is: <paramref name="message"/> is its newest version, or null if deleted.</summary>
    public bool TryFind(Guid id, out StoredMessage? message)
    {
        var found = Messages.TryGetValue(id, out var change);
        message = change?.Message;
        return found;
    }

    public bool TryFindUnique(string uniqueKey, out StoredMessage? message)
    {
        message = null;
        return ByUniqueKey.TryGetValue(uniqueKey, out var id) && TryFind(id, out message);
    }

    private void Add(Guid id, StoredMessage? message, bool inDb, string? uniqueKey)
    {
        Messages[id] = new MessageChange { Message = message, InDb = inDb, UniqueKey = uniqueKey };
        if (uniqueKey is not null) ByUniqueKey[uniqueKey] = id;
    }

    public void Clear()
    {
        Messages.Clear();
        ByUniqueKey.Clear();
        Documents.Clear();
        TopicDeltas.Clear();
        LastSeq = 0;
    }
}
