namespace HalfMsgBroker.Lifecycle;

/// <summary>The contract's naming rules, shared by validation and the tag filter.</summary>
public static class Names
{
    public const int MaxNameLength = 127;
    public const int MaxKeys = 32;
    public const int MaxKeyLength = 128;
    public const int MaxProperties = 64;

    /// <summary>topic, producerGroup, consumerGroup: 1-127 chars of [A-Za-z0-9_.-].</summary>
    public static bool IsValidName(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > MaxNameLength) return false;
        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-')) return false;
        }
        return true;
    }

    /// <summary>tag: 1-127 chars, no '|' or whitespace.</summary>
    public static bool IsValidTag(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > MaxNameLength) return false;
        foreach (var c in value)
        {
            if (c == '|' || char.IsWhiteSpace(c) || char.IsControl(c)) return false;
        }
        return true;
    }
}
