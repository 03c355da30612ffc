namespace HalfMsgBroker.Api;

/// <summary>RFC 9457 problem answers with the broker's stable <c>code</c> extension.</summary>
internal static class Problems
{
    public const string TypeBase = "https://halfmsgbroker.dev/problems/";

    public static IResult Of(int status, string code, string title, string detail, IDictionary<string, string[]>? errors = null)
    {
        var extensions = new Dictionary<string, object?> { ["code"] = code };
        if (errors is { Count: > 0 }) extensions["errors"] = errors;
        return TypedResults.Problem(detail, statusCode: status, title: title, type: TypeBase + code, extensions: extensions);
    }

    public static IResult InvalidName(string field, string? value) => Of(400, "invalid-name", "Invalid name",
        $"{field} '{value}' must be 1-127 characters of A-Z a-z 0-9 _ . -",
        new Dictionary<string, string[]> { [field] = ["must be 1-127 characters of A-Z a-z 0-9 _ . -"] });

    public static IResult InvalidFields(Dictionary<string, string[]> errors) => Of(400, "invalid-field", "Invalid request",
        string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(", ", e.Value)}")), errors);

    public static IResult InvalidField(string field, string message) =>
        InvalidFields(new Dictionary<string, string[]> { [field] = [message] });

    public static IResult NotFound(string code, string detail) => Of(404, code, "Not found", detail);

    public static IResult Conflict(string code, string detail) => Of(409, code, "Conflict", detail);

    public static IResult MalformedJson(string detail) => Of(400, "malformed-json", "Malformed JSON", detail);

    public static IResult TooLarge(long max) => Of(413, "message-too-large", "Message too large",
        $"The request body is larger than Broker:MaxMessageBytes ({max} bytes); send a smaller message or store the payload elsewhere and send a reference.");

    public static IResult UnsupportedMediaType(string? contentType) => Of(415, "unsupported-media-type", "Unsupported media type",
        $"Send the body as application/json (got '{contentType}').");

    public static IResult Forbidden(Access.Caller caller, string missing) => Of(403, "forbidden", "Forbidden",
        $"Forbidden for key '{caller.Name}': {missing}.");

    public static IResult QuotaExceeded(string detail) => Of(429, "quota-exceeded", "Quota exceeded", detail);

    /// <summary>The stable code for answers the framework produces (unknown routes, bad requests, crashes).</summary>
    public static string CodeForStatus(int status) => status switch
    {
        400 => "bad-request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        413 => "message-too-large",
        415 => "unsupported-media-type",
        429 => "rate-limited",
        503 => "storage-unavailable",
        >= 500 => "internal-error",
        _ => "http-" + status,
    };
}
