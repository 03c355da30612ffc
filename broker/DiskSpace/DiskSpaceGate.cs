using HalfMsgBroker.Api;

namespace HalfMsgBroker.DiskSpace;

/// <summary>
/// On the endpoints that add messages (sends and half messages): below the free-space limit they
/// answer <c>507 insufficient-storage</c> before reading the body. Everything that lets the backlog
/// shrink (commits, rollbacks, acks, nacks) is left alone.
/// </summary>
internal sealed class DiskSpaceGate(DiskSpaceMonitor monitor) : IEndpointFilter
{
    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next) =>
        monitor.IsLow
            ? ValueTask.FromResult<object?>(Problems.Of(StatusCodes.Status507InsufficientStorage, "insufficient-storage", "Insufficient storage", monitor.LowDetail))
            : next(context);
}
