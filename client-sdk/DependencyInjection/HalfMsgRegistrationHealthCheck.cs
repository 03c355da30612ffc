using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace HalfMsgBroker.Client;

/// <summary>
/// Whether this app's producer groups and subscriptions (from <c>AddTransactionalProducer</c>,
/// <c>AddPushSubscription</c>, …) are registered with the broker yet. A subscription only receives
/// messages committed after it exists, so an app should not take work that produces messages for
/// its own consumers before <see cref="WhenRegistered"/> completes.
/// </summary>
public interface IHalfMsgRegistrationStatus
{
    /// <summary>True once every start-up registration was accepted by the broker.</summary>
    bool IsRegistered { get; }

    /// <summary>Completes once every start-up registration was accepted by the broker.</summary>
    Task WhenRegistered { get; }
}

/// <summary>
/// A readiness check that is healthy once <see cref="IHalfMsgRegistrationStatus.IsRegistered"/>:
/// <c>services.AddHealthChecks().AddCheck&lt;HalfMsgRegistrationHealthCheck&gt;("halfmsg")</c>.
/// </summary>
public sealed class HalfMsgRegistrationHealthCheck(IHalfMsgRegistrationStatus status) : IHealthCheck
{
    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(status.IsRegistered
            ? HealthCheckResult.Healthy("registered with HalfMsgBroker")
            : HealthCheckResult.Unhealthy("still registering producer groups and subscriptions with HalfMsgBroker"));
}
