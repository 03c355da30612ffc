namespace HalfMsgBroker.Delivery;

/// <summary>
/// How a push subscription's endpoint has been answering since the broker started, for the operator
/// console: the last success, the last failure and its reason, and how many failed in a row. In memory
/// only; the per-message record (attempts, lastError) is what is stored.
/// </summary>
internal sealed class PushHealth
{
    private readonly object _gate = new();
    private long _lastSuccessAt;
    private long _lastFailureAt;
    private string? _lastError;
    private int _consecutiveFailures;

    public void Record(bool success, string? error, long now)
    {
        lock (_gate)
        {
            if (success)
            {
                _lastSuccessAt = now;
                _consecutiveFailures = 0;
            }
            else
            {
                _lastFailureAt = now;
                _lastError = error;
                _consecutiveFailures++;
            }
        }
    }

    public (long LastSuccessAt, long LastFailureAt, string? LastError, int ConsecutiveFailures) Read()
    {
        lock (_gate) return (_lastSuccessAt, _lastFailureAt, _lastError, _consecutiveFailures);
    }
}
