using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Tests.Support;

/// <summary>
/// A "tarpit": one Kestrel listener on several loopback ports that takes every POST and answers
/// none of them until it is disposed, the way a stuck endpoint holds the broker's requests.
/// </summary>
public sealed class Tarpit : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly CancellationTokenSource _release = new();
    private int _requests;

    private Tarpit(WebApplication app) => _app = app;

    /// <summary>One URL per port; the per-host caps count host:port, so each is a host of its own.</summary>
    public IReadOnlyList<string> Urls { get; private set; } = [];

    public int Requests => Volatile.Read(ref _requests);

    public static async Task<Tarpit> Start(int ports)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(k =>
        {
            for (var i = 0; i < ports; i++) k.Listen(IPAddress.Loopback, 0);
        });
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var tarpit = new Tarpit(app);
        app.MapPost("/{**path}", tarpit.Hold);
        await app.StartAsync();
        tarpit.Urls = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => a.TrimEnd('/') + "/hook").ToList();
        return tarpit;
    }

    private async Task Hold(HttpContext context)
    {
        Interlocked.Increment(ref _requests);
        await Task.Delay(Timeout.Infinite, _release.Token).ContinueWith(_ => { }, TaskScheduler.Default);
        context.Response.StatusCode = 200;
    }

    public async ValueTask DisposeAsync()
    {
        await _release.CancelAsync();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _release.Dispose();
    }
}
