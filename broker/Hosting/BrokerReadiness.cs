using HalfMsgBroker.Configuration;
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
        return Task.FromResult(failing > options.Value.Storage.UnreadyAfterApplyFailures
            ? HealthCheckResult.Unhealthy($"LiteDB has refused the journaled changes for {failing.TotalSeconds:F0} s; restart the broker once the cause (see the log) is fixed: the journal is replayed")
            : HealthCheckResult.Healthy());
    }
}
