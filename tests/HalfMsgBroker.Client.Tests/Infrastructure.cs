using System.Net;
using HalfMsgBroker.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Client.Tests;

/// <summary>
/// The broker under test, on a real Kestrel port, with short check and retry intervals, and access
/// control on (an admin key the client sends), as in production.
/// </summary>
public class BrokerFixture : IAsyncLifetime
{
    private readonly bool _h2c;
    private readonly string? _adminKey;

    public BrokerFixture()
        : this(h2c: false, adminKey: KeyedBrokerFixture.AdminKey)
    {
    }

    /// <param name="h2c">Listen with HTTP/2 only (h2c, as the README's HTTP/2 endpoint) and give the client <c>UseHttp2</c>.</param>
    /// <param name="adminKey">The broker's <c>Broker:Auth:AdminKey</c>, also the client's <c>ApiKey</c>; null for neither.</param>
    protected BrokerFixture(bool h2c, string? adminKey = null)
    {
        _h2c = h2c;
        _adminKey = adminKey;
    }

    /// <summary>The broker signs with both (rotation); apps in the tests know only the new one.</summary>
    public const string BrokerSecrets = "old-secret,new-secret";
    public const string AppSecret = "new-secret";

    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-sdk-tests-" + Guid.NewGuid().ToString("N"));
    private BrokerFactory? _factory;
    private ServiceProvider? _clientServices;

    public Uri BaseAddress { get; private set; } = null!;

    public HalfMsgClient Client { get; private set; } = null!;

    internal IHalfMsgApi Api => Client.Api;

    /// <summary>The client's named HTTP client, with the SDK's handlers.</summary>
    public HttpClient CreateHttpClient() =>
        _clientServices!.GetRequiredService<IHttpClientFactory>().CreateClient(HalfMsgServiceCollectionExtensions.HttpClientName);

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_dataPath);
        _factory = new BrokerFactory(_dataPath, _adminKey);
        if (_h2c) _factory.UseKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2));
        else _factory.UseKestrel(0);
        _factory.StartServer();
        var addresses = _factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        BaseAddress = new Uri(addresses.First().Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("localhost", "127.0.0.1", StringComparison.Ordinal));
        var services = new ServiceCollection();
        services.AddLogging();
        var halfMsg = services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = BaseAddress;
            o.UseHttp2 = _h2c;
            o.ApiKey = _adminKey;
        });
        // The client options' documented way past 100 concurrent calls on one HTTP/2 connection.
        if (_h2c) halfMsg.HttpClient.UseSocketsHttpHandler((h, _) => h.EnableMultipleHttp2Connections = true);
        _clientServices = services.BuildServiceProvider();
        Client = _clientServices.GetRequiredService<HalfMsgClient>();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_clientServices is not null)
        {
            await _clientServices.DisposeAsync();
        }

        if (_factory is not null)
        {
            await _factory.DisposeAsync();
        }

        try
        {
            Directory.Delete(_dataPath, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private sealed class BrokerFactory(string dataPath, string? adminKey) : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseSetting("Broker:DataPath", dataPath);
            if (adminKey is not null) builder.UseSetting("Broker:Auth:AdminKey", adminKey);
            builder.UseSetting("Broker:Transactions:CheckAfter", "00:00:00.300");
            builder.UseSetting("Broker:Transactions:CheckInterval", "00:00:00.300");
            builder.UseSetting("Broker:Transactions:MaxChecks", "200");
            builder.UseSetting("Broker:Delivery:RetryBackoff:0", "00:00:00.200");
            builder.UseSetting("Broker:Delivery:RetryBackoff:1", "00:00:00.300");
            builder.UseSetting("Broker:Delivery:RetryBackoff:2", "00:00:00.500");
            builder.UseSetting("Broker:Signing:Secret", BrokerSecrets);
            builder.ConfigureLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        }
    }
}

/// <summary>The broker on an HTTP/2-only (h2c) listener, with a client that sets <c>UseHttp2</c>.</summary>
public sealed class H2cBrokerFixture() : BrokerFixture(h2c: true, adminKey: KeyedBrokerFixture.AdminKey);

/// <summary>
/// The broker with an admin key (<c>ApiKeys</c> mode once the broker has access control), and a client
/// that sends it.
/// </summary>
public sealed class KeyedBrokerFixture() : BrokerFixture(h2c: false, adminKey: AdminKey)
{
    /// <summary>Distinctive, so a test can look for it in logs; at least 32 characters, as the broker requires.</summary>
    public const string AdminKey = "hmb-test-admin-key-5f0c2a9e7d4b41c8a3e6";
}

[CollectionDefinition(Name)]
public sealed class BrokerCollection : ICollectionFixture<BrokerFixture>
{
    public const string Name = "broker";
}

/// <summary>An app of the test (producer or consumer side) on a real Kestrel listener at 127.0.0.1:0.</summary>
public sealed class TestApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestApp(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public IServiceProvider Services => _app.Services;

    public Uri Url(string path) => new(BaseAddress, path);

    /// <summary>The listening address of the app owning <paramref name="services"/> (valid once started).</summary>
    public static Uri AddressOf(IServiceProvider services)
    {
        var address = services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Uri(address);
    }

    public static Func<IServiceProvider, Uri> UrlOf(string path) => sp => new Uri(AddressOf(sp), path);

    public static async Task<TestApp> StartAsync(Uri broker, Action<IHalfMsgBuilder> configureServices, Action<WebApplication> configureApp, Action<HalfMsgClientOptions>? configureOptions = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0));
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var halfMsg = builder.Services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = broker;
            o.SigningSecrets = [BrokerFixture.AppSecret];
            o.ApiKey = KeyedBrokerFixture.AdminKey;
            configureOptions?.Invoke(o);
        });
        configureServices(halfMsg);
        var app = builder.Build();
        configureApp(app);
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        return new TestApp(app, AddressOf(app.Services));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

public static class Eventually
{
    /// <summary>Polls <paramref name="probe"/> until <paramref name="done"/> holds or the deadline passes (then fails).</summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> done, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(15));
        T last;
        while (true)
        {
            last = await probe();
            if (done(last))
            {
                return last;
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting for {what}; last value: {last}");
            }

            await Task.Delay(50);
        }
    }

    public static Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        UntilAsync(() => Task.FromResult(condition()), ok => ok, what, timeout);
}

public static class Names
{
    public static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..10];
}
