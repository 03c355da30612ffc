using HalfMsgBroker.Configuration;
using HalfMsgBroker.Storage;
using LiteDB;

namespace HalfMsgBroker.Access;

/// <summary>
/// Keys and the audit trail in <c>access.db</c> beside <c>broker.db</c>. A file of its own: the message
/// store's LiteDB file is written by one thread through the journal, and these rare writes need neither.
/// Each write is one LiteDB transaction (in the OS cache when it returns, fsynced too in Fsync mode).
/// </summary>
internal sealed class LiteDbAccessStore : IAccessStore
{
    private const string FileName = "access.db";

    private readonly LiteDatabase _db;
    private readonly ILiteCollection<BsonDocument> _keys;
    private readonly ILiteCollection<BsonDocument> _audit;
    private readonly LogFileSync? _sync;
    private readonly Lock _write = new();

    public LiteDbAccessStore(string dataPath, Durability durability)
    {
        Directory.CreateDirectory(dataPath);
        var file = Path.Combine(dataPath, FileName);
        _db = new LiteDatabase(new ConnectionString
        {
            Filename = file,
            Connection = ConnectionType.Direct,
            Collation = CollationMigration.Ordinal,
        });
        _keys = _db.GetCollection("keys");
        _audit = _db.GetCollection("audit", BsonAutoId.Int64);
        _audit.EnsureIndex("at", "$.at");
        // The console reads one transaction's or one group's entries (GET /v1/audit?target=).
        _audit.EnsureIndex("target", "$.target");
        if (durability == Durability.Fsync)
        {
            _sync = new LogFileSync(file);
            DirectorySync.Flush(dataPath); // LiteDB never fsyncs the folder its new file is in
        }
    }

    public IReadOnlyList<ApiKey> Keys() => _keys.FindAll().Select(FromBson).ToList();

    public void SaveKey(ApiKey key) => Write(() => _keys.Upsert(ToBson(key)));

    public ApiKey? Revoke(string id, long at)
    {
        ApiKey? revoked = null;
        Write(() =>
        {
            if (_keys.FindById(id) is not { } doc || FromBson(doc) is not { RevokedAt: null } key) return;
            revoked = key with { RevokedAt = at };
            _keys.Update(ToBson(revoked));
        });
        return revoked;
    }

    public void SaveLastUsed(IReadOnlyDictionary<string, long> lastUsedById) => Write(() =>
    {
        _db.BeginTrans();
        try
        {
            foreach (var (id, at) in lastUsedById)
            {
                if (_keys.FindById(id) is { } doc)
                {
                    doc["lastUsedAt"] = at;
                    _keys.Update(doc);
                }
            }
            _db.Commit();
        }
        catch
        {
            _db.Rollback();
            throw;
        }
    });

    public AuditEntry Append(long at, string actor, string action, string target, string? detail)
    {
        var doc = new BsonDocument { ["at"] = at, ["actor"] = actor, ["action"] = action, ["target"] = target };
        if (detail is not null) doc["detail"] = detail;
        BsonValue id = BsonValue.Null;
        Write(() => id = _audit.Insert(doc));
        return new AuditEntry(id.AsInt64, at, actor, action, target, detail);
    }

    public IReadOnlyList<AuditEntry> Audit(long after, int limit, string? target = null) =>
        (target is null
            ? _audit.Find(Query.GT("_id", after), limit: limit)
            // Read through the target index; one target's entries are few, so ordering them by id is cheap.
            : _audit.Query().Where(Query.EQ("target", target)).Where(Query.GT("_id", after)).OrderBy("_id").Limit(limit).ToEnumerable())
            .Select(d => new AuditEntry(d["_id"].AsInt64, d["at"].AsInt64, d["actor"].AsString, d["action"].AsString, d["target"].AsString,
                d.TryGetValue("detail", out var detail) ? detail.AsString : null))
            .ToList();

    public int PurgeAudit(long before)
    {
        var purged = 0;
        Write(() => purged = _audit.DeleteMany(Query.LT("at", before)));
        return purged;
    }

    private void Write(Action write)
    {
        lock (_write)
        {
            write();
            _sync?.Flush();
        }
    }

    internal static BsonDocument ToBson(ApiKey k)
    {
        var doc = new BsonDocument
        {
            ["_id"] = k.Id,
            ["name"] = k.Name,
            ["role"] = k.Role.ToString(),
            ["pg"] = new BsonArray(k.ProducerGroups.Entries.Select(e => new BsonValue(e))),
            ["cg"] = new BsonArray(k.ConsumerGroups.Entries.Select(e => new BsonValue(e))),
            ["topics"] = new BsonArray(k.Topics.Entries.Select(e => new BsonValue(e))),
            ["hash"] = k.Hash,
            ["createdAt"] = k.CreatedAt,
        };
        if (k.LastUsedAt is { } used) doc["lastUsedAt"] = used;
        if (k.RevokedAt is { } revoked) doc["revokedAt"] = revoked;
        return doc;
    }

    internal static ApiKey FromBson(BsonDocument d) => new()
    {
        Id = d["_id"].AsString,
        Name = d["name"].AsString,
        Role = Enum.Parse<Role>(d["role"].AsString),
        ProducerGroups = ScopeOf(d["pg"]),
        ConsumerGroups = ScopeOf(d["cg"]),
        Topics = ScopeOf(d["topics"]),
        Hash = d["hash"].AsBinary,
        CreatedAt = d["createdAt"].AsInt64,
        LastUsedAt = d.TryGetValue("lastUsedAt", out var used) ? used.AsInt64 : null,
        RevokedAt = d.TryGetValue("revokedAt", out var revoked) ? revoked.AsInt64 : null,
    };

    private static Scope ScopeOf(BsonValue array) => new(array.AsArray.Select(v => v.AsString).ToList());

    public void Dispose()
    {
        _sync?.Dispose();
        _db.Dispose();
    }
}
