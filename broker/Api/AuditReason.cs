namespace HalfMsgBroker.Api;

/// <summary>
/// Why an operator made a change, for the audit trail: the <c>X-HalfMsg-Reason</c> header
/// (percent-encoded UTF-8, since header values are ASCII; plain ASCII passes as it is) or a
/// <c>reason</c> field of the request body where the endpoint has one; the header wins.
/// </summary>
internal static class AuditReason
{
    public const string Header = "X-HalfMsg-Reason";
    public const int MaxLength = 500;
    private const string Rule = "must be at most 500 characters without control characters";

    /// <summary>The reason given, or null; a problem answer when it is malformed (nothing is changed then).</summary>
    public static (string? Reason, IResult? Problem) Read(HttpRequest request, string? fromBody = null)
    {
        var header = request.Headers[Header].ToString();
        string? reason = fromBody;
        if (header.Length > 0)
        {
            try
            {
                reason = Uri.UnescapeDataString(header);
            }
            catch (UriFormatException)
            {
                return (null, Problems.InvalidField(Header, "must be percent-encoded UTF-8"));
            }
        }
        if (string.IsNullOrWhiteSpace(reason)) return (null, null);
        reason = reason.Trim();
        if (reason.Length > MaxLength || reason.Any(char.IsControl))
        {
            return (null, Problems.InvalidField(header.Length > 0 ? Header : "reason", Rule));
        }
        return (reason, null);
    }

    /// <summary>The audit detail with the reason appended as <c>reason=…</c>.</summary>
    public static string? Append(string? detail, string? reason) =>
        reason is null ? detail : string.IsNullOrEmpty(detail) ? $"reason={reason}" : $"{detail} reason={reason}";
}
