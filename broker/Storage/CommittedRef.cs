using System.Globalization;

namespace HalfMsgBroker.Storage;

/// <summary>A committed message's entry in the commit-time index: when it was committed, and its id.</summary>
public readonly record struct CommittedRef(long CommittedAt, Guid Id)
{
    /// <summary>Reads an entry <c>&lt;topic&gt;␊&lt;15 digits&gt;&lt;32 hex digits&gt;</c> from its end (topics cannot hold a line feed).</summary>
    public static CommittedRef OfEntry(string entry) => new(
        long.Parse(entry.AsSpan(entry.Length - 47, 15), NumberStyles.None, CultureInfo.InvariantCulture),
        Guid.ParseExact(entry.AsSpan(entry.Length - 32), "N"));
}
