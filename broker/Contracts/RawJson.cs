using System.Text.Json;
using System.Text.Json.Serialization;

namespace HalfMsgBroker.Contracts;

/// <summary>
/// A message body: stored as compact UTF-8 JSON and written to the wire as-is, so a body is never
/// parsed again between the producer and the consumer.
/// </summary>
[JsonConverter(typeof(RawJsonConverter))]
public readonly record struct RawJson(byte[] Utf8);

public sealed class RawJsonConverter : JsonConverter<RawJson>
{
    public override RawJson Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        using var doc = JsonDocument.ParseValue(ref reader);
        return new RawJson(JsonSerializer.SerializeToUtf8Bytes(doc.RootElement, BrokerJsonContext.Default.JsonElement));
    }

    public override void Write(Utf8JsonWriter writer, RawJson value, JsonSerializerOptions options) =>
        writer.WriteRawValue(value.Utf8, skipInputValidation: true);
}
