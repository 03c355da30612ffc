using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Tests.Support;

/// <summary>A real Kestrel endpoint on a loopback port that the broker calls (a check or push receiver).</summary>
public sealed class TestReceiver : IAsyncDisposable
{
    public sealed record Received(JsonNode Body, IReadOnlyDictionary<string, string> Headers, byte[] Raw, DateTime At);

    private readonly WebApplication _app;
    private Func<Received, int, Task<(int Status, string? Body)>> _handler;

    private TestReceiver(WebApplication app, Func<Received, int, Task<(int, string?)>> handler)
    {
        _app = app;
        _handler = handler;
    }

    public ConcurrentQueue<Received> Requests { get; } = new();
    public string Url { get; private set; } = "";

    /// <summary>Starts a receiver; the handler gets each request and its 1-based number.</summary>
    public static async Task<TestReceiver> Start(Func<Received, int, Task<(int Status, string? Body)>> handler)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new TestReceiver(app, handler);
        app.MapPost("/{**path}", receiver.Handle);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.Url = address.TrimEnd('/') + "/hook";
        return receiver;
    }

    public static Task<TestReceiver> Answering(int status, string? body = null) =>
        Start((_, _) => Task.FromResult((status, body)));

    public void Respond(Func<Received, int, Task<(int Status, string? Body)>> handler) => _handler = handler;

    private async Task Handle(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        var raw = buffer.ToArray();
        var headers = context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
        var received = new Received(JsonNode.Parse(raw) ?? new JsonObject(), headers, raw, DateTime.UtcNow);
        Requests.Enqueue(received);
        var (status, body) = await _handler(received, Requests.Count);
        context.Response.StatusCode = status;
        if (body is not null)
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(body);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
