using System.Text.Json;
using System.Text.Json.Serialization;

namespace HalfMsgBroker.Client;

// The wire counts durations in whole seconds (…Seconds) or milliseconds (…Ms); the SDK's public surface
// uses TimeSpan throughout. These converters translate at the JSON boundary. Range checks happen before
// a value gets here (HalfMsgLimits), so writing only rounds a fraction up to the wire's unit.

/// <summary>A <see cref="TimeSpan"/> as a whole number of one unit on the wire (a fraction rounds up).</summary>
internal abstract class WholeUnitsJsonConverter(Func<double, TimeSpan> fromUnits, Func<TimeSpan, long> toWholeUnits) : JsonConverter<TimeSpan>
{
    public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        fromUnits(reader.GetDouble());

    public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) =>
        writer.WriteNumberValue(toWholeUnits(value));
}

/// <summary>A nullable <see cref="TimeSpan"/> in one unit on the wire: null stays null, a value goes through <paramref name="units"/>.</summary>
internal abstract class NullableUnitsJsonConverter(JsonConverter<TimeSpan> units) : JsonConverter<TimeSpan?>
{
    public override bool HandleNull => true;

    public override TimeSpan? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? null : units.Read(ref reader, typeof(TimeSpan), options);

    public override void Write(Utf8JsonWriter writer, TimeSpan? value, JsonSerializerOptions options)
    {
        if (value is { } v)
        {
            units.Write(writer, v, options);
        }
        else
        {
            writer.WriteNullValue();
        }
    }
}

/// <summary>A <see cref="TimeSpan"/> as whole seconds on the wire (a fraction rounds up).</summary>
internal sealed class SecondsJsonConverter() : WholeUnitsJsonConverter(TimeSpan.FromSeconds, v => HalfMsgLimits.WholeSeconds(v));

/// <summary>A nullable <see cref="TimeSpan"/> as whole seconds on the wire.</summary>
internal sealed class NullableSecondsJsonConverter() : NullableUnitsJsonConverter(new SecondsJsonConverter());

/// <summary>A <see cref="TimeSpan"/> as whole milliseconds on the wire (a fraction rounds up).</summary>
internal sealed class MillisecondsJsonConverter() : WholeUnitsJsonConverter(TimeSpan.FromMilliseconds, v => HalfMsgLimits.WholeMilliseconds(v));

/// <summary>A nullable <see cref="TimeSpan"/> as whole milliseconds on the wire.</summary>
internal sealed class NullableMillisecondsJsonConverter() : NullableUnitsJsonConverter(new MillisecondsJsonConverter());
