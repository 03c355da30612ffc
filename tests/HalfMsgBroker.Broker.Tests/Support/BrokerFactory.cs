using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace HalfMsgBroker.Tests.Support;

/// <summary>
/// The broker in-process on a fresh temp data path, with every interval short so asynchronous
/// outcomes arrive in milliseconds. Extra settings override the defaults. Access control is on
/// (ApiKeys mode, <see cref="AdminKey"/>), and <see cref="WebApplicationFactory{T}.CreateClient()"/>
/// hands out clients that send the admin key, so every test runs the way a production broker does.
/// The storage provider is the one under test (<see cref="TestStorage"/>).
/// </summary>
public sealed class BrokerFactory : WebApplicationFactory<Program>
{
    public const string AdminKey = "test-admin-key-0123456789abcdefghijklmnop";

    private readonly Dictionary<string, string?> _settings;

    public BrokerFactory(IDictionary<string, string?>? settings = null)
    {
        DataPath = Path.Combine(Path.GetTempPath(), "halfmsg-tests", Guid.NewGuid().ToString("N"));
        _settings = new Dictionary<string, string?>
        {
            ["Broker:DataPath"] = DataPath,
            ["Broker:Transactions:CheckAfter"] = "00:00:00.200",
            ["Broker:Transactions:CheckInterval"] = "00:00:00.200",
            ["Broker:Transactions:IdleScanInterval"] = "00:00:00.100",
            ["Broker:Delivery:RetryBackoff:0"] = "00:00:00.100",
            ["Broker:Delivery:RetryBackoff:1"] = "00:00:00.200",
            ["Broker:RetentionSweepInterval"] = "00:00:00.200",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Broker:Auth:AdminKey"] = AdminKey,
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>()) _settings[key] = value;
        _ownsDataPath = _settings["Broker:DataPath"] == DataPath;
        // A test that chose its provider (the PostgreSQL tests' own settings) keeps it.
        if (!_settings.ContainsKey("Broker:Storage:Provider"))
        {
            foreach (var (key, value) in TestStorage.SettingsFor(_settings["Broker:DataPath"]!)) _settings[key] = value;
        }
    }

    /// <summary>False when a test chose the data path (to restart on it): its database is the test's to keep.</summary>
    private readonly bool _ownsDataPath;

    public string DataPath { get; }

    /// <summary>A client without any key (for tests of authentication itself).</summary>
    public HttpClient CreateAnonymousClient()
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = null;
        return client;
    }

    /// <summary>A client that sends <paramref name="key"/>.</summary>
    public HttpClient CreateClient(string key)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    protected override void ConfigureClient(HttpClient client)
    {
        base.ConfigureClient(client);
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminKey);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in _settings) builder.UseSetting(key, value);
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        TryDelete(DataPath);
        if (_ownsDataPath) TestStorage.Drop(DataPath);
    }

    internal static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
