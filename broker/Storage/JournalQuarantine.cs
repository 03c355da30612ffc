using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>
/// <c>journal/quarantine/</c>: what the broker set aside instead of deleting it or stopping for it —
/// damaged segments moved there by <c>journal salvage</c>, and changes LiteDB refused (poison), one
/// JSON file each. Everything in the folder counts until an operator inspects and deletes it and
/// restarts the broker.
/// </summary>
internal sealed class JournalQuarantine : IDisposable
{
    private int _count;

    public JournalQuarantine(string journalDirectory)
    {
        Folder = Path.Combine(journalDirectory, "quarantine");
        _count = Directory.Exists(Folder) ? Directory.GetFiles(Folder).Length : 0;
    }

    public string Folder { get; }

    /// <summary>Files in the quarantine folder (those found at start, and those added since).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Moves a damaged segment into the quarantine folder (never deletes it); returns its new path.</summary>
    public string MoveSegment(string segmentPath)
    {
        Directory.CreateDirectory(Folder);
        var target = Path.Combine(Folder, Path.GetFileName(segmentPath));
        File.Move(segmentPath, target);
        Added();
        return target;
    }

    /// <summary>Writes a change LiteDB refused: the frame sequence that carried it last, what it is, the error, and the document itself.</summary>
    public string SavePoison(long seq, string collection, string id, BsonDocument? document, Exception error)
    {
        Directory.CreateDirectory(Folder);
        var record = new BsonDocument
        {
            ["seq"] = seq,
            ["collection"] = collection,
            ["id"] = id,
            ["error"] = error.GetType().Name + ": " + error.Message,
            ["change"] = document is null ? new BsonDocument { ["deleted"] = true } : document,
        };
        var safeId = string.Concat(id.Select(c => char.IsLetterOrDigit(c) || c == '-' ? c : '_'));
        var path = Path.Combine(Folder, $"poison-{seq:D19}-{collection}-{safeId}.json");
        File.WriteAllText(path, JsonSerializer.Serialize(record, indent: true));
        Added();
        return path;
    }

    private void Added() => Interlocked.Increment(ref _count);

    /// <summary>A closed store reports no quarantine of its own any more.</summary>
    public void Dispose() => Interlocked.Exchange(ref _count, 0);
}
