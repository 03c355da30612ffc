using HalfMsgBroker.Engine;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace HalfMsgBroker.Hosting;

/// <summary>Ready once recovery has rebuilt the in-memory state and while the store writer runs.</summary>
internal sealed class BrokerReadiness(IServiceProvider services) : IHealthCheck
{
    private volatile bool _ready;

    public void MarkReady() => _ready = true;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!_ready) return Task.FromResult(HealthCheckResult.Unhealthy("recovering stored state"));
        return Task.FromResult(services.GetRequiredService<StoreWriter>().IsRunning
            ? HealthCheckResult.Healthy()
            : HealthCheckResult.Unhealthy("the store writer stopped"));
    }
}
