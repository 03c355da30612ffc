using System.Text.Json;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.OperatorConsole;

/// <summary>Logging:Console:FormatterName=json makes every console line a JSON object carrying the trace and span ids.</summary>
public sealed class JsonLogTests : IDisposable
{
    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-jsonlog-tests", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_dataPath);

    [Fact]
    public async Task A_request_is_logged_as_json_with_its_trace_id()
    {
        await using var broker = await BrokerProcess.Start(_dataPath,
            "--Logging:Console:FormatterName=json",
            "--Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics=Information");
        const string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/topics");
        request.Headers.Add("traceparent", $"00-{trace}-00f067aa0ba902b7-01");
        (await broker.Client.SendAsync(request)).EnsureSuccessStatusCode();

        var line = await Eventually.Until(() => Task.FromResult(broker.OutputLines.FirstOrDefault(l => l.Contains("/v1/topics", StringComparison.Ordinal))),
            l => l is not null, "the request's log line");
        using var json = JsonDocument.Parse(line!);
        var root = json.RootElement;
        Assert.Equal("Microsoft.AspNetCore.Hosting.Diagnostics", root.GetProperty("Category").GetString());
        Assert.EndsWith("Z", root.GetProperty("Timestamp").GetString(), StringComparison.Ordinal);
        var ids = root.GetProperty("Scopes").EnumerateArray().Single(s => s.TryGetProperty("TraceId", out _));
        Assert.Equal(trace, ids.GetProperty("TraceId").GetString());
        Assert.Equal(16, ids.GetProperty("SpanId").GetString()!.Length);
        // Every line the broker printed is JSON, not just this one.
        Assert.All(broker.OutputLines, l => JsonDocument.Parse(l).Dispose());
    }
}
