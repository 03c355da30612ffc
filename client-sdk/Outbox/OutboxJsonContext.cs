using System.Text.Json.Serialization;

namespace HalfMsgBroker.Client;

/// <summary>The outbox's <c>message_keys</c> and <c>properties</c> columns (JSON).</summary>
[JsonSerializable(typeof(string[]))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class OutboxJsonContext : JsonSerializerContext;
