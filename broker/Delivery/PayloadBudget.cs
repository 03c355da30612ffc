namespace HalfMsgBroker.Delivery;

/// <summary>
/// Caps the memory spent on caching message bodies for live deliveries. Within the budget a
/// hand-out needs no storage read; past it (a large backlog) bodies are read back from LiteDB.
/// </summary>
internal sealed class PayloadBudget(long maxBytes)
{
    private long _used;

    public long Used => Interlocked.Read(ref _used);

    public bool TryReserve(long bytes)
    {
        if (Interlocked.Add(ref _used, bytes) <= maxBytes) return true;
        Interlocked.Add(ref _used, -bytes);
        return false;
    }

    public void Release(long bytes) => Interlocked.Add(ref _used, -bytes);
}
