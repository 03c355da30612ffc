using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using HalfMsgBroker.Lifecycle;

namespace HalfMsgBroker.Api;

/// <summary>Collects field errors so one answer lists everything wrong with a request.</summary>
internal sealed class FieldErrors
{
    private readonly Dictionary<string, List<string>> _errors = new(StringComparer.Ordinal);

    public bool Any => _errors.Count > 0;

    public void Add(string field, string message)
    {
        if (!_errors.TryGetValue(field, out var list)) _errors[field] = list = [];
        list.Add(message);
    }

    /// <summary>Takes <paramref name="inner"/>'s errors with their fields prefixed (<c>items[2].</c>), for one item of a batch.</summary>
    public void AddAll(string prefix, FieldErrors inner)
    {
        foreach (var (field, messages) in inner._errors)
        {
            foreach (var message in messages) Add(prefix + field, message);
        }
    }

    public IResult ToProblem() => Problems.InvalidFields(_errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal));

    public int? Range(string field, int? value, int min, int max, int? fallback)
    {
        if (value is null) return fallback;
        if (value < min || value > max)
        {
            Add(field, $"must be between {min} and {max} (got {value})");
            return fallback;
        }
        return value;
    }

    /// <summary>The <c>after</c> of a listing: the <c>next</c> of the page before (a message id), or null for the first page.</summary>
    public Guid? Cursor(string? after)
    {
        if (after is null) return null;
        if (Guid.TryParse(after, out var id)) return id;
        Add("after", "must be the 'next' cursor of a previous page");
        return null;
    }

    public string? Tag(string field, string? tag)
    {
        if (tag is not null && !Names.IsValidTag(tag)) Add(field, "must be 1-127 characters without '|' or whitespace");
        return tag;
    }

    /// <summary>orderingKey: absent, or 1-128 characters without control characters.</summary>
    public string? OrderingKey(string? key)
    {
        if (key is not null && (key.Length is 0 or > Names.MaxKeyLength || key.Any(char.IsControl)))
        {
            Add("orderingKey", $"must be 1-{Names.MaxKeyLength} characters without control characters");
        }
        return key;
    }

    public string[] Keys(string[]? keys)
    {
        if (keys is null) return [];
        if (keys.Length > Names.MaxKeys) Add("keys", $"at most {Names.MaxKeys} keys (got {keys.Length})");
        for (var i = 0; i < keys.Length; i++)
        {
            if (string.IsNullOrEmpty(keys[i]) || keys[i].Length > Names.MaxKeyLength || keys[i].Any(char.IsControl))
            {
                Add($"keys[{i}]", $"must be 1-{Names.MaxKeyLength} characters without control characters");
            }
        }
        return keys.Distinct(StringComparer.Ordinal).ToArray();
    }

    public Dictionary<string, string>? Properties(Dictionary<string, string?>? properties)
    {
        if (properties is null || properties.Count == 0) return null;
        if (properties.Count > Names.MaxProperties) Add("properties", $"at most {Names.MaxProperties} properties (got {properties.Count})");
        var result = new Dictionary<string, string>(properties.Count, StringComparer.Ordinal);
        foreach (var (key, value) in properties)
        {
            if (key.Length is 0 or > Names.MaxKeyLength) Add("properties", $"property names must be 1-{Names.MaxKeyLength} characters");
            if (value is null) Add($"properties.{key}", "must be a string, not null");
            else result[key] = value;
        }
        return result;
    }

    /// <summary>The body as compact UTF-8 JSON; it is required but may be JSON null.</summary>
    public byte[] Body(JsonElement body)
    {
        if (body.ValueKind == JsonValueKind.Undefined)
        {
            Add("body", "is required (any JSON value; use null for none)");
            return [];
        }
        // The body's own bytes as the producer sent them (already validated JSON), not a re-serialization.
        return JsonMarshal.GetRawUtf8Value(body).ToArray();
    }

    /// <summary>delaySeconds (0-86400) or deliverAt (RFC 3339, at most a day ahead) → when to deliver.</summary>
    public long DeliverAt(int? delaySeconds, string? deliverAt, long now)
    {
        const int maxDelay = 86_400;
        if (delaySeconds is not null && deliverAt is not null)
        {
            Add("deliverAt", "give delaySeconds or deliverAt, not both");
            return 0;
        }
        var delay = Range("delaySeconds", delaySeconds, 0, maxDelay, 0);
        if (delay > 0) return now + delay.Value * 1000L;
        if (deliverAt is null) return 0;

        if (!DateTimeOffset.TryParse(deliverAt, CultureInfo.InvariantCulture, DateTimeStyles.None, out var at)
            || !HasOffset(deliverAt))
        {
            Add("deliverAt", "must be an RFC 3339 time with an offset, e.g. 2026-11-25T10:00:00Z");
            return 0;
        }
        var ms = at.ToUnixTimeMilliseconds();
        if (ms > now + maxDelay * 1000L) Add("deliverAt", "must be at most 24 hours ahead");
        return ms > now ? ms : 0;
    }

    public string? AbsoluteHttpUrl(string field, string? url)
    {
        if (url is null) return null;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            || url.Length > 2048)
        {
            Add(field, "must be an absolute http:// or https:// URL of at most 2048 characters");
        }
        return url;
    }

    /// <summary>A required RFC 3339 time with an offset, in Unix milliseconds.</summary>
    public long? Instant(string field, string? text)
    {
        if (text is null)
        {
            Add(field, "is required: an RFC 3339 time with an offset, e.g. 2026-11-25T10:00:00Z");
            return null;
        }
        if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var at) || !HasOffset(text))
        {
            Add(field, $"must be an RFC 3339 time with an offset, e.g. 2026-11-25T10:00:00Z (got '{text}')");
            return null;
        }
        return at.ToUnixTimeMilliseconds();
    }

    private static bool HasOffset(string text)
    {
        var t = text.AsSpan().Trim();
        if (t.Length < 6) return false;
        if (t[^1] is 'Z' or 'z') return true;
        var sign = t[^6];
        return (sign is '+' or '-') && t[^3] == ':';
    }
}

internal static class Identifiers
{
    /// <summary>transactionId: 1-128 printable characters without whitespace or / ? # % (it travels in URL paths).</summary>
    public static bool IsValidTransactionId(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 128) return false;
        foreach (var c in value)
        {
            if (char.IsWhiteSpace(c) || char.IsControl(c) || c is '/' or '?' or '#' or '%' or '\\') return false;
        }
        return true;
    }

    public const string TransactionIdRule = "must be 1-128 printable characters without whitespace or / ? # % \\";

    public static bool IsValidIdempotencyKey(string? value) => IsValidTransactionId(value) || (value is { Length: > 0 and <= 255 } && !value.Any(char.IsControl));

    public static bool TryParseMessageId(string? value, out Guid id) => Guid.TryParse(value, out id);

    /// <summary>W3C traceparent: version-traceid-parentid-flags.</summary>
    public static bool IsTraceParent(string? value) => value is { Length: 55 } && value[2] == '-' && value[35] == '-' && value[52] == '-';
}
