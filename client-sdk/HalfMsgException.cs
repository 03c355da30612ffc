using System.Net;
using System.Text.Json;

namespace HalfMsgBroker.Client;

/// <summary>
/// The one exception the SDK throws for a failed broker call: a problem-details answer
/// (<see cref="Status"/>, <see cref="Code"/>, <see cref="Detail"/>) or a transport failure (status 0).
/// </summary>
public sealed class HalfMsgException : Exception
{
    /// <summary>Creates an exception.</summary>
    /// <param name="status">HTTP status, or 0 when no answer came.</param>
    /// <param name="code">The problem's stable code (e.g. <c>transaction-conflict</c>), or a client-side code.</param>
    /// <param name="detail">What went wrong.</param>
    /// <param name="innerException">The cause, if any.</param>
    public HalfMsgException(int status, string code, string? detail, Exception? innerException = null)
        : base(BuildMessage(status, code, detail), innerException)
    {
        Status = status;
        Code = code;
        Detail = detail;
    }

    /// <summary>Creates an exception with a message only (code <c>client-error</c>).</summary>
    public HalfMsgException()
        : this(0, "client-error", null)
    {
    }

    /// <summary>Creates an exception with a message only (code <c>client-error</c>).</summary>
    /// <param name="message">The message.</param>
    public HalfMsgException(string message)
        : this(0, "client-error", message)
    {
    }

    /// <summary>Creates an exception with a message and cause (code <c>client-error</c>).</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public HalfMsgException(string message, Exception innerException)
        : this(0, "client-error", message, innerException)
    {
    }

    /// <summary>The HTTP status, or 0 when the broker could not be reached.</summary>
    public int Status { get; }

    /// <summary>The problem's stable <c>code</c> (see the broker's error table); <c>transport</c> when no answer came.</summary>
    public string Code { get; }

    /// <summary>The problem's <c>detail</c>.</summary>
    public string? Detail { get; }

    /// <summary>Per-field validation errors of an <c>invalid-field</c> problem.</summary>
    public IReadOnlyDictionary<string, string[]>? Errors { get; init; }

    /// <summary>
    /// True when trying the same call again later may succeed (no answer, 408, 429, 5xx). A 401
    /// (<c>unauthenticated</c>: no key, or one the broker does not know) or 403 (<c>forbidden</c>: the key's
    /// role or scopes do not cover the call) is not transient and is never retried.
    /// </summary>
    public bool IsTransient => Status is 0 or 408 or 429 or >= 500;

    /// <summary>Builds the exception from a non-2xx broker answer.</summary>
    /// <param name="response">The answer.</param>
    /// <param name="cancellationToken">Cancels reading the body.</param>
    /// <returns>The exception.</returns>
    public static async Task<HalfMsgException> FromResponseAsync(HttpResponseMessage response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(response);
        var status = (int)response.StatusCode;
        string? text = null;
        try
        {
            text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            if (!string.IsNullOrWhiteSpace(text))
            {
                var problem = JsonSerializer.Deserialize(text, HalfMsgJsonContext.Default.ProblemDetailsData);
                if (problem is not null && (problem.Code is not null || problem.Detail is not null || problem.Type is not null))
                {
                    return new HalfMsgException(status, problem.Code ?? CodeFromType(problem.Type) ?? DefaultCode(response.StatusCode), problem.Detail ?? problem.Title)
                    {
                        Errors = problem.Errors,
                    };
                }
            }
        }
        catch (JsonException)
        {
            // not a problem document: fall through with the raw text as detail
        }

        return new HalfMsgException(status, DefaultCode(response.StatusCode), string.IsNullOrWhiteSpace(text) ? response.ReasonPhrase : Truncate(text, 500));
    }

    private static string? CodeFromType(string? type)
    {
        if (string.IsNullOrEmpty(type))
        {
            return null;
        }

        var slash = type.LastIndexOf('/');
        return slash >= 0 && slash < type.Length - 1 ? type[(slash + 1)..] : null;
    }

    // 401 and 403 keep the contract's codes even when a proxy in front of the broker answered them.
    private static string DefaultCode(HttpStatusCode status) => status switch
    {
        HttpStatusCode.Unauthorized => "unauthenticated",
        HttpStatusCode.Forbidden => "forbidden",
        _ => "http-" + ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static string Truncate(string text, int max) => text.Length <= max ? text : text[..max];

    private static string BuildMessage(int status, string code, string? detail) => status switch
    {
        0 => $"HalfMsgBroker call failed ({code}): {detail}",
        401 => $"HalfMsgBroker answered 401 {code}: {detail} (the call carried no API key the broker accepts: set HalfMsgClientOptions.ApiKey to a valid key)",
        403 => $"HalfMsgBroker answered 403 {code}: {detail} (the API key is valid, but its role or scopes do not cover this call)",
        _ => $"HalfMsgBroker answered {status} {code}: {detail}",
    };
}
