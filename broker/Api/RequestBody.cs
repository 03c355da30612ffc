using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace HalfMsgBroker.Api;

/// <summary>
/// Reads a JSON request body with the size limit enforced while reading (a huge body is refused
/// at the limit, not after buffering it), and turns every way it can be wrong into a problem answer.
/// </summary>
internal static class RequestBody
{
    public readonly record struct Read<T>(T? Value, IResult? Problem) where T : class;

    /// <param name="allowEmpty">When true an empty body reads as <c>null</c> (all defaults) instead of an error.</param>
    public static async ValueTask<Read<T>> ReadAsync<T>(HttpRequest request, JsonTypeInfo<T> type, long maxBytes, bool allowEmpty, CancellationToken cancellationToken)
        where T : class
    {
        if (request.ContentLength > maxBytes) return new(null, Problems.TooLarge(maxBytes));
        if (request.ContentType is { } contentType && request.ContentLength != 0 && !IsJson(contentType))
        {
            return new(null, Problems.UnsupportedMediaType(contentType));
        }

        var reader = request.BodyReader;
        ReadResult read;
        while (true)
        {
            read = await reader.ReadAsync(cancellationToken);
            if (read.Buffer.Length > maxBytes)
            {
                reader.AdvanceTo(read.Buffer.End);
                return new(null, Problems.TooLarge(maxBytes));
            }
            if (read.IsCompleted || read.IsCanceled) break;
            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }

        try
        {
            var buffer = read.Buffer;
            if (IsBlank(buffer))
            {
                return allowEmpty ? new(null, null) : new(null, Problems.MalformedJson("The request needs a JSON body."));
            }
            var json = new Utf8JsonReader(buffer, new JsonReaderOptions { MaxDepth = 64 });
            var value = JsonSerializer.Deserialize(ref json, type);
            if (value is null) return new(null, Problems.MalformedJson("The request body must be a JSON object, not null."));
            return new(value, null);
        }
        catch (JsonException e)
        {
            return new(null, Problems.MalformedJson(Describe(e)));
        }
        finally
        {
            reader.AdvanceTo(read.Buffer.End);
        }
    }

    private static bool IsJson(string contentType) =>
        contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase)
        || (contentType.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && contentType.Contains("+json", StringComparison.OrdinalIgnoreCase))
        || contentType.StartsWith("text/json", StringComparison.OrdinalIgnoreCase);

    private static bool IsBlank(ReadOnlySequence<byte> buffer)
    {
        foreach (var segment in buffer)
        {
            foreach (var b in segment.Span)
            {
                if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')) return false;
            }
        }
        return true;
    }

    /// <summary>The serializer's message names .NET types; say it in JSON terms with the path.</summary>
    private static string Describe(JsonException e)
    {
        var path = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? null : e.Path.TrimStart('$', '.');
        if (path is not null && e.Message.Contains("could not be converted", StringComparison.Ordinal))
        {
            return $"{path} has the wrong JSON type or is out of range (numbers must be whole numbers, texts strings, lists arrays).";
        }
        var what = e.InnerException?.Message ?? e.Message;
        return path is null ? $"The request body is not valid JSON: {what}" : $"The request body is not valid JSON at {path}: {what}";
    }
}
