using HalfMsgBroker.Configuration;
using HalfMsgBroker.DiskSpace;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// Ready once recovery has rebuilt the in-memory state, while the store writer runs, and while LiteDB
/// takes the journaled changes: refused for longer than <c>Storage:UnreadyAfterApplyFailures</c> (LiteDB closes
/// itself on an I/O error), the broker is not ready, so an orchestrator restarts it and the journal
/// is replayed. A failed journal write or fsync makes it unready at once (the broker is stopping). A
/// quarantine (see <c>JournalQuarantine</c>) reports Degraded, which still answers 200: the broker keeps
/// serving everything but the quarantined changes, and a restart would not bring those back.
/// On the PostgreSQL provider, ready means the database lock is held and PostgreSQL answers (<see cref="PostgreSqlReadiness"/>);
/// with many active brokers, a clock far from PostgreSQL's reads Degraded (<see cref="Cluster.ClockOffset"/>).
/// </summary>
internal sealed class BrokerReadiness(IServiceProvider services, IOptions<BrokerOptions> options) : IHealthCheck
{
    private volatile bool _ready;

    public void MarkReady() => _ready = true;

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!_ready) return HealthCheckResult.Unhealthy("recovering stored state");
        if (!services.GetRequiredService<StoreWriter>().IsRunning) return HealthCheckResult.Unhealthy("the store writer stopped");
        if (services.GetService<PostgreSqlReadiness>() is { } postgres && await postgres.ProblemAsync(cancellationToken) is { } problem)
        {
            return HealthCheckResult.Unhealthy(problem);
        }
        return Check();
    }

    private HealthCheckResult Check()
    {
        var store = services.GetRequiredService<IMessageStore>() as JournaledMessageStore;
        if (store?.JournalFailure is not null)
        {
            return HealthCheckResult.Unhealthy("a journal write or fsync failed; the broker takes no more writes and is stopping so the journal is replayed");
        }
        var failing = store?.ApplyFailingFor ?? TimeSpan.Zero;
        if (failing > options.Value.Storage.UnreadyAfterApplyFailures)
        {
            return HealthCheckResult.Unhealthy(
                $"LiteDB has refused the journaled changes for {failing.TotalSeconds:F0} s; restart the broker once the cause (see the log) is fixed: the journal is replayed");
        }
        // Still serving everything else, so still ready (200); the detail and the metrics say why. Low disk is
        // Degraded too: consumers, commits and acks must keep reaching this broker, since they are what frees
        // space (RabbitMQ's disk alarm blocks publishers only).
        var reasons = new List<string>(2);
        if (store?.QuarantinedCount is > 0 and var n)
        {
            reasons.Add($"{n} item(s) in journal/quarantine/ (damaged segments or changes LiteDB refused; see the log); inspect them, delete them and restart the broker to clear this");
        }
        var disk = services.GetRequiredService<DiskSpaceMonitor>();
        if (disk.IsLow) reasons.Add(disk.LowDetail);
        if (services.GetService<Cluster.ClockOffset>()?.Problem is { } clock) reasons.Add(clock);
        return reasons.Count > 0 ? HealthCheckResult.Degraded(string.Join("; ", reasons)) : HealthCheckResult.Healthy();
    }
}
