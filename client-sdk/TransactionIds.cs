namespace HalfMsgBroker.Client;

/// <summary>Makes transaction ids for half messages.</summary>
public static class TransactionIds
{
    /// <summary>A new globally unique transaction id (a version-7 GUID, time-ordered, 32 hex chars).</summary>
    /// <returns>The id.</returns>
    public static string New() => Guid.CreateVersion7().ToString("N");
}
