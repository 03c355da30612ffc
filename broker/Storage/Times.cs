namespace HalfMsgBroker.Storage;

/// <summary>Stored times are Unix milliseconds (0: unset); the wire carries RFC 3339 UTC.</summary>
public static class Times
{
    public static DateTime ToUtc(long unixMs) => DateTime.UnixEpoch.AddMilliseconds(unixMs);

    public static DateTime? ToUtcOrNull(long unixMs) => unixMs == 0 ? null : ToUtc(unixMs);
}
