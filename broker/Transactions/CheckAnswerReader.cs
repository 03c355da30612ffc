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
/// </summary>
internal static class CheckAnswerReader
{
    private static readonly JsonReaderOptions Strict = new() { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 16 };

    public static (CheckAnswer Answer, string Text) Read(ReadOnlySpan<byte> body)
    {
        string? state;
        try
        {
            if (!TryReadState(body, out state)) return Invalid;
        }
        catch (JsonException)
        {
            return Invalid;
        }
        if (state is null || !Ascii.IsValid(state)) return Invalid;
        if (Is(state, "commit") || Is(state, "COMMIT_MESSAGE")) return (CheckAnswer.Commit, "commit");
        if (Is(state, "rollback") || Is(state, "ROLLBACK_MESSAGE")) return (CheckAnswer.Rollback, "rollback");
        if (Is(state, "unknown") || Is(state, "UNKNOW")) return (CheckAnswer.Unknown, "unknown");
        return Invalid;
    }

    private static (CheckAnswer, string) Invalid => (CheckAnswer.Unknown, OutboundErrors.InvalidAnswer);

    private static bool TryReadState(ReadOnlySpan<byte> body, out string? state)
    {
        state = null;
        var reader = new Utf8JsonReader(body, Strict);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return false;
        var seen = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isState = reader.ValueTextEquals("state"u8);
            reader.Read();
            if (isState)
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
