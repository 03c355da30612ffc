using System.Collections.Concurrent;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using Npgsql;

namespace HalfMsgBroker.Cluster;

/// <summary>
/// Decides whether this broker runs a periodic sweep now (retention, dead-letter expiry, audit purge). One broker per
/// store: always. Many active brokers on one database: only the holder of the sweep's lease (<see cref="PostgreSqlSweepLease"/>).
/// </summary>
internal interface ISweepLease
{
    /// <summary>Asked before each sweep: true when this broker is to run it now (it then holds it for a while).</summary>
    ValueTask<bool> HoldAsync(string name, CancellationToken cancellationToken);
}

/// <summary>The names of the sweeps that run once across a cluster.</summary>
internal static class Sweeps
{
    public const string Retention = "retention";
    public const string AuditPurge = "audit-purge";
}

/// <summary>The only broker on its store runs every sweep.</summary>
internal sealed class SoleSweeper : ISweepLease
{
    public ValueTask<bool> HoldAsync(string name, CancellationToken cancellationToken) => ValueTask.FromResult(true);
}

/// <summary>
/// A lease row per sweep in <c>halfmsg_leases (name, holder, until)</c>, taken or renewed with one conditional upsert:
/// it succeeds when nobody holds the row, its lease ran out, or this broker holds it already. Times are the database's
/// (<c>now()</c>), so brokers' clocks need not agree. A row rather than <c>pg_try_advisory_xact_lock</c>: a sweep is many
/// writer batches, not one transaction, so a transaction's lock would not cover it, and a session lock would need a
/// connection per broker held for good (and would vanish silently with it); a row also shows an operator who sweeps.
/// Correctness never rests on the lease: every sweep's change goes through the writer, which reads its rows locked, so
/// two brokers sweeping at once (a lease that ran out mid-sweep) delete or expire nothing twice; the lease only keeps
/// the work from being done once per broker.
/// </summary>
internal sealed class PostgreSqlSweepLease(NpgsqlDataSource dataSource, TimeSpan lease, ILogger<PostgreSqlSweepLease> logger) : ISweepLease
{
    private readonly ConcurrentDictionary<string, long> _held = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _holding = new(StringComparer.Ordinal);

    /// <summary>This broker's name in the lease rows: unique per process and per host in it (tests run several).</summary>
    public string Holder { get; } = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>How many times this broker held <paramref name="name"/> when asked (tests: the sweep runs on one broker).</summary>
    public long TimesHeld(string name) => _held.GetValueOrDefault(name);

    public async ValueTask<bool> HoldAsync(string name, CancellationToken cancellationToken)
    {
        bool held;
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var take = new NpgsqlCommand("""
                INSERT INTO halfmsg_leases AS l (name, holder, until) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
                ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
                WHERE l.until < now() OR l.holder = EXCLUDED.holder
                RETURNING holder
                """, connection);
            take.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
            take.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Holder });
            take.Parameters.Add(new NpgsqlParameter<double> { TypedValue = lease.TotalMilliseconds });
            held = await take.ExecuteScalarAsync(cancellationToken) is not null;
        }
        catch (Exception e) when (PostgreSqlErrors.Translate(e) is StoreUnavailableException unavailable)
        {
            throw unavailable;
        }
        if (_holding.TryGetValue(name, out var was) ? was != held : held)
        {
            if (held) logger.LogInformation("This broker ({Holder}) now runs the {Sweep} sweep for the cluster", Holder, name);
            else logger.LogInformation("Another broker took over the {Sweep} sweep from this one ({Holder})", name, Holder);
        }
        _holding[name] = held;
        if (held) _held.AddOrUpdate(name, 1, (_, n) => n + 1);
        return held;
    }
}
