using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Client.Tests;

/// <summary>
/// A stand-in broker on a real Kestrel listener at 127.0.0.1:0: records every request as it arrived on the
/// wire (method, path, headers, body) and answers with <c>respond</c>.
/// </summary>
public sealed class RecordingListener : IAsyncDisposable
{
    private readonly WebApplication _app;

    private RecordingListener(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
    }

    public sealed record Request(string Method, string Path, IReadOnlyDictionary<string, string> Headers, string Body)
    {
        public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;
    }

    public Uri BaseAddress { get; }

    public ConcurrentQueue<Request> Requests { get; } = new();

    public static async Task<RecordingListener> StartAsync(Func<HttpContext, Task> respond)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0));
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var app = builder.Build();
        RecordingListener? listener = null;
        app.Run(async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync(context.RequestAborted);
            var headers = context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
            listener!.Requests.Enqueue(new Request(context.Request.Method, context.Request.Path.Value ?? string.Empty, headers, body));
            await respond(context);
        });
        await app.StartAsync();
        listener = new RecordingListener(app, TestApp.AddressOf(app.Services));
        return listener;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
