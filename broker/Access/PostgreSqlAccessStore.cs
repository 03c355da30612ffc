using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using LiteDB;
using Npgsql;

namespace HalfMsgBroker.Access;

/// <summary>
/// Keys and the audit trail in the broker's PostgreSQL database (<c>halfmsg_api_keys</c>,
/// <c>halfmsg_audit</c>), written straight through as <see cref="LiteDbAccessStore"/> writes them: one
/// autocommitted statement each. A key is the same document LiteDB keeps, with its last use in a
/// column of its own so that recording uses need not rewrite it. Each write is fenced as the message
/// store's batches are (<see cref="ActiveBrokerLock.FenceSql"/>): a deposed broker cannot save a key its
/// successor revoked.
/// With many active brokers (<paramref name="announce"/>), a saved key is announced on <see cref="ConfigChange.Channel"/> in the
/// same transaction, so the other brokers reload their keys: a key revoked on one is refused by all.
/// </summary>
internal sealed class PostgreSqlAccessStore(NpgsqlDataSource dataSource, ActiveBrokerLock? activeLock = null, bool announce = false) : IAccessStore
{
    public IReadOnlyList<ApiKey> Keys() => PostgreSqlErrors.Read(dataSource, c =>
    {
        using var command = new NpgsqlCommand("SELECT doc, last_used_at FROM halfmsg_api_keys ORDER BY id", c);
        using var reader = command.ExecuteReader();
        var keys = new List<ApiKey>();
        while (reader.Read())
        {
            var key = LiteDbAccessStore.FromBson(BsonSerializer.Deserialize((byte[])reader[0]));
            keys.Add(reader.IsDBNull(1) ? key : key with { LastUsedAt = reader.GetInt64(1) });
        }
        return keys;
    });

    private const string SaveKeySql =
        "INSERT INTO halfmsg_api_keys (id, doc, last_used_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, last_used_at = EXCLUDED.last_used_at";

    public void SaveKey(ApiKey key)
    {
        var doc = BsonSerializer.Serialize(LiteDbAccessStore.ToBson(key));
        if (!announce)
        {
            Execute(SaveKeySql, key.Id, doc, key.LastUsedAt);
            return;
        }
        // One implicit transaction: the notification is heard only if the key is saved.
        PostgreSqlErrors.Read(dataSource, c =>
        {
            using var batch = new NpgsqlBatch(c);
            var save = new NpgsqlBatchCommand(SaveKeySql);
            foreach (var p in new object?[] { key.Id, doc, key.LastUsedAt }) save.Parameters.Add(new NpgsqlParameter { Value = p ?? DBNull.Value });
            batch.BatchCommands.Add(save);
            batch.BatchCommands.Add(PostgreSqlNotifications.NotifyCommand(ConfigChange.Channel, ConfigChange.ApiKey(key.Id)));
            return batch.ExecuteNonQuery();
        });
    }

    /// <summary>The row is read locked and written in one transaction, so two brokers revoking one key serialize and the second finds it revoked.</summary>
    public ApiKey? Revoke(string id, long at) => Write(c =>
    {
        ApiKey key;
        using (var read = Command(c, "SELECT doc, last_used_at FROM halfmsg_api_keys WHERE id = $1 FOR UPDATE", id))
        using (var reader = read.ExecuteReader())
        {
            if (!reader.Read()) return null;
            key = LiteDbAccessStore.FromBson(BsonSerializer.Deserialize((byte[])reader[0]));
            if (!reader.IsDBNull(1)) key = key with { LastUsedAt = reader.GetInt64(1) };
        }
        if (key.RevokedAt is not null) return null;
        var revoked = key with { RevokedAt = at };
        using (var save = Command(c, "UPDATE halfmsg_api_keys SET doc = $2 WHERE id = $1", id, BsonSerializer.Serialize(LiteDbAccessStore.ToBson(revoked))))
        {
            save.ExecuteNonQuery();
        }
        if (announce)
        {
            using var notify = Command(c, "SELECT pg_notify($1, $2)", ConfigChange.Channel, ConfigChange.ApiKey(id));
            notify.ExecuteNonQuery();
        }
        return revoked;
    }, inTransaction: true);

    public void SaveLastUsed(IReadOnlyDictionary<string, long> lastUsedById)
    {
        if (lastUsedById.Count == 0) return;
        Execute("UPDATE halfmsg_api_keys k SET last_used_at = u.at FROM unnest($1::text[], $2::bigint[]) AS u(id, at) WHERE k.id = u.id",
            lastUsedById.Keys.ToArray(), lastUsedById.Values.ToArray());
    }

    public AuditEntry Append(long at, string actor, string action, string target, string? detail)
    {
        var id = Write(c =>
        {
            using var command = Command(c, "INSERT INTO halfmsg_audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                at, actor, action, target, detail);
            return (long)command.ExecuteScalar()!;
        });
        return new AuditEntry(id, at, actor, action, target, detail);
    }

    public IReadOnlyList<AuditEntry> Audit(long after, int limit, string? target = null) => PostgreSqlErrors.Read(dataSource, c =>
    {
        using var command = target is null
            ? Command(c, "SELECT id, at, actor, action, target, detail FROM halfmsg_audit WHERE id > $1 ORDER BY id LIMIT $2", after, (long)limit)
            : Command(c, "SELECT id, at, actor, action, target, detail FROM halfmsg_audit WHERE target = $3 AND id > $1 ORDER BY id LIMIT $2", after, (long)limit, target);
        using var reader = command.ExecuteReader();
        var entries = new List<AuditEntry>();
        while (reader.Read())
        {
            entries.Add(new AuditEntry(reader.GetInt64(0), reader.GetInt64(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetString(5)));
        }
        return entries;
    });

    public int PurgeAudit(long before) => Execute("DELETE FROM halfmsg_audit WHERE at < $1", before);

    private int Execute(string sql, params object?[] parameters) => Write(c =>
    {
        using var command = Command(c, sql, parameters);
        return command.ExecuteNonQuery();
    });

    /// <summary>
    /// One write in a transaction that first checks this broker's generation (when it has one); without a generation it
    /// is autocommitted unless <paramref name="inTransaction"/> (a read and a write that must not be split).
    /// </summary>
    private T Write<T>(Func<NpgsqlConnection, T> write, bool inTransaction = false)
    {
        var fenced = activeLock is { Generation: > 0 } held ? held : null;
        if (fenced is null && !inTransaction) return PostgreSqlErrors.Read(dataSource, write);
        if (fenced is { Lost: true }) throw new StoreUnavailableException("This broker lost its database lock and is stopping; another broker may be active. Retry: a load balancer sends the retry to the active one.");
        try
        {
            return PostgreSqlErrors.Read(dataSource, c =>
            {
                using var transaction = c.BeginTransaction();
                if (fenced is not null)
                {
                    using var fence = new NpgsqlCommand(ActiveBrokerLock.FenceSql, c, transaction);
                    fence.Parameters.Add(new NpgsqlParameter<long> { TypedValue = fenced.Generation });
                    fence.ExecuteNonQuery();
                }
                var result = write(c);
                transaction.Commit();
                return result;
            });
        }
        catch (PostgresException e) when (fenced is not null && ActiveBrokerLock.IsFenced(e))
        {
            fenced.Deposed();
            throw new StoreUnavailableException("Another broker took over the database; this one wrote nothing and is stopping. Retry: a load balancer sends the retry to the active one.");
        }
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, string sql, params object?[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection);
        foreach (var p in parameters) command.Parameters.Add(new NpgsqlParameter { Value = p ?? DBNull.Value });
        return command;
    }

    public void Dispose()
    {
    }
}
