namespace HalfMsgBroker.Outbound;

/// <summary>
/// Rides on an outbound request (<see cref="HttpRequestMessage.Options"/>) so that a call whose
/// deadline passes can tell "never connected" (<see cref="OutboundErrors.ConnectTimeout"/>: the
/// target is unreachable) from "connected but no answer in time" (<see cref="OutboundErrors.Timeout"/>).
/// <see cref="GuardedConnector"/> marks the connection it opens for the request that started it.
/// </summary>
internal sealed class ConnectProgress
{
    public static readonly HttpRequestOptionsKey<ConnectProgress> Key = new("HalfMsg.ConnectProgress");

    private int _state;

    public void Started() => Interlocked.CompareExchange(ref _state, 1, 0);

    public void Connected() => Volatile.Write(ref _state, 2);

    /// <summary>A connection was being opened for this request and none was established.</summary>
    public bool StillConnecting => Volatile.Read(ref _state) == 1;
}
