using HalfMsgBroker.Configuration;
using HalfMsgBroker.DiskSpace;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// Ready once recovery has rebuilt the in-memory state, while the store writer runs, and while LiteDB
/// takes the journaled changes: refused for longer than <c>Storage:UnreadyAfterApplyFailures</c> (LiteDB closes
/// itself on an I/O error), the broker is not ready, so an orchestrator restarts it and the journal
/// is replayed.
/// </summary>
internal sealed class BrokerReadiness(IServiceProvider services, IOptions<BrokerOptions> options) : IHealthCheck
{
    private volatile bool _ready;

    public void MarkReady() => _ready = true;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!_ready) return Task.FromResult(HealthCheckResult.Unhealthy("recovering stored state"));
        if (!services.GetRequiredService<StoreWriter>().IsRunning) return Task.FromResult(HealthCheckResult.Unhealthy("the store writer stopped"));
        var failing = services.GetRequiredService<IMessageStore>() is JournaledMessageStore store ? store.ApplyFailingFor : TimeSpan.Zero;
        if (failing > options.Value.Storage.UnreadyAfterApplyFailures)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy(
                $"LiteDB has refused the journaled changes for {failing.TotalSeconds:F0} s; restart the broker once the cause (see the log) is fixed: the journal is replayed"));
        }
        // Low disk is Degraded, which still answers 200: consumers, commits and acks must keep reaching
        // this broker, since they are what frees space (RabbitMQ's disk alarm blocks publishers only).
        var disk = services.GetRequiredService<DiskSpaceMonitor>();
        return Task.FromResult(disk.IsLow ? HealthCheckResult.Degraded(disk.LowDetail) : HealthCheckResult.Healthy());
    }
}
