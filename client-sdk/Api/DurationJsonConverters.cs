using System.Text.Json;
using System.Text.Json.Serialization;

namespace HalfMsgBroker.Client;

// The wire counts durations in whole seconds (…Seconds) or milliseconds (…Ms); the SDK's public surface
// uses TimeSpan throughout. These converters translate at the JSON boundary. Range checks happen before
// a value gets here (HalfMsgLimits), so writing only rounds a fraction up to the wire's unit.

/// <summary>A <see cref="TimeSpan"/> as whole seconds on the wire (a fraction rounds up).</summary>
internal sealed class SecondsJsonConverter : JsonConverter<TimeSpan>
{
    public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        TimeSpan.FromSeconds(reader.GetDouble());

    public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) =>
        writer.WriteNumberValue(HalfMsgLimits.WholeSeconds(value));
}

/// <summary>A nullable <see cref="TimeSpan"/> as whole seconds on the wire.</summary>
internal sealed class NullableSecondsJsonConverter : JsonConverter<TimeSpan?>
{
    public override TimeSpan? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? null : TimeSpan.FromSeconds(reader.GetDouble());

    public override void Write(Utf8JsonWriter writer, TimeSpan? value, JsonSerializerOptions options)
    {
        if (value is { } v)
        {
            writer.WriteNumberValue(HalfMsgLimits.WholeSeconds(v));
        }
        else
        {
            writer.WriteNullValue();
        }
    }
}

/// <summary>A <see cref="TimeSpan"/> as whole milliseconds on the wire (a fraction rounds up).</summary>
internal sealed class MillisecondsJsonConverter : JsonConverter<TimeSpan>
{
    public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        TimeSpan.FromMilliseconds(reader.GetDouble());

    public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) =>
        writer.WriteNumberValue(HalfMsgLimits.WholeMilliseconds(value));
}

/// <summary>A nullable <see cref="TimeSpan"/> as whole milliseconds on the wire.</summary>
internal sealed class NullableMillisecondsJsonConverter : JsonConverter<TimeSpan?>
{
    public override TimeSpan? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? null : TimeSpan.FromMilliseconds(reader.GetDouble());

    public override void Write(Utf8JsonWriter writer, TimeSpan? value, JsonSerializerOptions options)
    {
        if (value is { } v)
        {
            writer.WriteNumberValue(HalfMsgLimits.WholeMilliseconds(v));
        }
        else
        {
            writer.WriteNullValue();
        }
    }
}
