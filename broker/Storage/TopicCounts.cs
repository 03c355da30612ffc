using LiteDB;

namespace HalfMsgBroker.Storage;

/// <summary>
/// How many messages each topic holds. The counts live in memory and reach LiteDB at most once a
/// second (and with every purge), not with every group commit: one more document per commit was
/// ~8 % of the writer's cost. What a crash can lose is recounted on open: the counts are stored with
/// a watermark, the largest message id they include, and ids are time-ordered (UUIDv7), so the
/// messages inserted since are the id range above it. Deletes (purges) always store the counts in
/// the same transaction, so they are never lost. (A wall clock stepped back across a crash could
/// make a few new ids sort below the watermark and go uncounted; counts are informational.)
/// </summary>
internal sealed class TopicCounts
{
    private const string WatermarkId = "topicCountsWatermark";
    private static readonly TimeSpan PersistEvery = TimeSpan.FromSeconds(1);

    private readonly ILiteCollection<BsonDocument> _topics;
    private readonly ILiteCollection<BsonDocument> _meta;
    private readonly Lock _lock = new();

    // Committed counts (read by request threads under _lock); the writer's pending batch is kept apart.
    private readonly Dictionary<string, long> _counts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _pending = new(StringComparer.Ordinal);
    private readonly HashSet<string> _unsaved = new(StringComparer.Ordinal);
    private Guid _watermark;
    private Guid _pendingWatermark;
    private bool _savedInBatch;
    private bool _deletedInBatch;
    private long _savedAt;

    public TopicCounts(ILiteCollection<BsonDocument> topics, ILiteCollection<BsonDocument> meta, ILiteCollection<BsonDocument> messages)
    {
        _topics = topics;
        _meta = meta;
        foreach (var doc in topics.FindAll()) _counts[doc["_id"].AsString] = doc["n"].AsInt64;

        var mark = meta.FindById(WatermarkId);
        if (mark is null)
        {
            // A data file from before watermarks stored exact counts with every commit: nothing to recount.
            var last = messages.Find(Query.All("_id", Query.Descending), 0, 1).FirstOrDefault();
            _watermark = last is null ? Guid.Empty : last["_id"].AsGuid;
            return;
        }
        _watermark = mark["v"].AsGuid;
        foreach (var doc in messages.Find(Query.GT("_id", _watermark)))
        {
            var topic = doc["t"].AsString;
            _counts[topic] = _counts.GetValueOrDefault(topic) + 1;
            _unsaved.Add(topic);
            if (doc["_id"].AsGuid.CompareTo(_watermark) > 0) _watermark = doc["_id"].AsGuid;
        }
    }

    /// <summary>Writer thread, inside a batch: a message was inserted.</summary>
    public void Inserted(Guid id)
    {
        if (id.CompareTo(_pendingWatermark) > 0) _pendingWatermark = id;
    }

    /// <summary>Writer thread, inside a batch: a message was deleted, so this batch must store the counts.</summary>
    public void Deleted() => _deletedInBatch = true;

    /// <summary>Writer thread, at the end of a batch: its changes per topic; stores the counts when due.</summary>
    public void Add(IReadOnlyDictionary<string, long> deltas, long nowMs)
    {
        foreach (var (topic, delta) in deltas)
        {
            if (delta != 0) _pending[topic] = _pending.GetValueOrDefault(topic) + delta;
        }
        // A delete cannot be recounted from the id range, so a batch that deletes always stores the counts.
        if (!_deletedInBatch && TimeSpan.FromMilliseconds(nowMs - _savedAt) < PersistEvery) return;

        foreach (var topic in _unsaved.Concat(_pending.Keys).Distinct(StringComparer.Ordinal))
        {
            _topics.Upsert(new BsonDocument { ["_id"] = topic, ["n"] = CountAfterBatch(topic) });
        }
        _meta.Upsert(new BsonDocument { ["_id"] = WatermarkId, ["v"] = Max(_watermark, _pendingWatermark) });
        _savedInBatch = true;
        _savedAt = nowMs;
    }

    /// <summary>Writer thread, after the batch committed.</summary>
    public void Committed()
    {
        lock (_lock)
        {
            foreach (var topic in _pending.Keys) _counts[topic] = CountAfterBatch(topic);
        }
        if (_savedInBatch) _unsaved.Clear();
        else _unsaved.UnionWith(_pending.Keys);
        _watermark = Max(_watermark, _pendingWatermark);
        Reset();
    }

    /// <summary>Writer thread, after the batch rolled back.</summary>
    public void RolledBack() => Reset();

    /// <summary>On a clean shutdown, outside any batch.</summary>
    public void Save()
    {
        if (_unsaved.Count == 0) return;
        foreach (var topic in _unsaved) _topics.Upsert(new BsonDocument { ["_id"] = topic, ["n"] = _counts[topic] });
        _meta.Upsert(new BsonDocument { ["_id"] = WatermarkId, ["v"] = _watermark });
        _unsaved.Clear();
    }

    public IReadOnlyList<TopicCount> All()
    {
        lock (_lock)
        {
            return _counts.Select(c => new TopicCount(c.Key, c.Value)).OrderBy(t => t.Topic, StringComparer.Ordinal).ToList();
        }
    }

    private long CountAfterBatch(string topic) =>
        Math.Max(0, _counts.GetValueOrDefault(topic) + _pending.GetValueOrDefault(topic));

    private void Reset()
    {
        _pending.Clear();
        _pendingWatermark = Guid.Empty;
        _savedInBatch = false;
        _deletedInBatch = false;
    }

    private static Guid Max(Guid a, Guid b) => a.CompareTo(b) >= 0 ? a : b;
}
