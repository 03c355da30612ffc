using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Bench;

/// <summary>A Kestrel server inside the generator on loopback: the push receiver (workload 3) and
/// the fast check-back endpoint (workload 4).</summary>
internal sealed class LocalServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    public int Port { get; }
    public Uri BaseUri => new($"http://127.0.0.1:{Port}/");

    private LocalServer(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public static async Task<LocalServer> StartAsync(Action<WebApplication> map)
    {
        var port = BrokerHost.FreePort();
        // No settings-file watch: it would watch the current folder, subfolders included, and that may hold a broker's data.
        var builder = WebApplication.CreateSlimBuilder(["--hostBuilder:reloadConfigOnChange=false"]);
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxConcurrentConnections = 2048);
        var app = builder.Build();
        map(app);
        await app.StartAsync();
        return new LocalServer(app, port);
    }

    public static async Task<byte[]> ReadBodyAsync(HttpRequest request)
    {
        using var ms = new MemoryStream();
        await request.Body.CopyToAsync(ms);
        return ms.ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
