using System.Text;
using System.Text.Json;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Outbound;

namespace HalfMsgBroker.Transactions;

/// <summary>
/// Reads a producer's check answer, failing closed: only a body that is exactly one JSON object with
/// one <c>"state"</c> property (that spelling: JSON names are case-sensitive) whose string value is
/// <c>commit</c> or <c>COMMIT_MESSAGE</c> in any ASCII case commits. Everything else — no body, an
/// error object, HTML, an array, a duplicate or non-string <c>state</c>, trailing text, padding or
/// non-ASCII look-alikes (<c>"commıt"</c> upper-cases to <c>COMMIT</c>) — is read as unknown, so a
/// producer that is failing can never commit a transaction by accident (dtm#535).
/// An unknown answer may carry <c>"retryAfterSeconds"</c> (a number, at least 1): ask again then.
/// </summary>
internal static class CheckAnswerReader
{
    private static readonly JsonReaderOptions Strict = new() { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 16 };

    public static (CheckAnswer Answer, string Text, TimeSpan? RetryAfter) Read(ReadOnlySpan<byte> body)
    {
        string? state;
        TimeSpan? retryAfter;
        try
        {
            if (!TryReadState(body, out state, out retryAfter)) return Invalid;
        }
        catch (JsonException)
        {
            return Invalid;
        }
        if (state is null || !Ascii.IsValid(state)) return Invalid;
        if (Is(state, "commit") || Is(state, "COMMIT_MESSAGE")) return (CheckAnswer.Commit, "commit", null);
        if (Is(state, "rollback") || Is(state, "ROLLBACK_MESSAGE")) return (CheckAnswer.Rollback, "rollback", null);
        if (Is(state, "unknown") || Is(state, "UNKNOW"))
        {
            return retryAfter is { } after
                ? (CheckAnswer.Unknown, $"unknown, retry after {after.TotalSeconds:0.###} s", after)
                : (CheckAnswer.Unknown, "unknown", null);
        }
        return Invalid;
    }

    private static (CheckAnswer, string, TimeSpan?) Invalid => (CheckAnswer.Unknown, OutboundErrors.InvalidAnswer, null);

    private static bool TryReadState(ReadOnlySpan<byte> body, out string? state, out TimeSpan? retryAfter)
    {
        state = null;
        retryAfter = null;
        var retrySeen = false;
        var reader = new Utf8JsonReader(body, Strict);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return false;
        var seen = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isState = reader.ValueTextEquals("state"u8);
            var isRetryAfter = reader.ValueTextEquals("retryAfterSeconds"u8);
            reader.Read();
            if (isRetryAfter)
            {
                // Anything but one number of seconds, at least 1, is no request to wait: the check is spent as usual.
                retryAfter = !retrySeen && reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var seconds)
                    && seconds >= 1 && seconds <= TimeSpan.MaxValue.TotalSeconds / 2
                    ? TimeSpan.FromSeconds(seconds)
                    : null;
                retrySeen = true;
                reader.Skip();
            }
            else if (isState)
            {
                if (seen || reader.TokenType != JsonTokenType.String) return false;
                seen = true;
                state = reader.GetString();
            }
            else
            {
                reader.Skip();
            }
        }
        if (reader.TokenType != JsonTokenType.EndObject) return false;
        // Anything after the object but whitespace makes the reader throw: the whole body must be the answer.
        return !reader.Read();
    }


    private static bool Is(string value, string expected) => string.Equals(value, expected, StringComparison.OrdinalIgnoreCase);
}
