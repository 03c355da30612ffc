using System.Globalization;
using System.Net;
using HalfMsgBroker.DiskSpace;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>
/// The real reading, on a real filesystem of its own without a mount: Linux's tmpfs at /dev/shm
/// (quiet, unlike the disk that builds share). Filling it past the limit refuses sends; freeing it
/// takes them again.
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class RealDiskSpaceTests : IAsyncLifetime
{
    private const long Margin = 64L * 1024 * 1024;
    private readonly string _dataPath = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), "halfmsg-tests", Guid.NewGuid().ToString("N"));
    private BrokerFactory _factory = null!;
    private HttpClient _c = null!;

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_dataPath);
        var limit = new DriveFreeSpace().AvailableBytes(_dataPath) - Margin;
        _factory = new BrokerFactory(new Dictionary<string, string?>
        {
            ["Broker:DataPath"] = _dataPath,
            ["Broker:Storage:MinFreeBytes"] = limit.ToString(CultureInfo.InvariantCulture),
            ["Broker:Storage:FreeSpaceCheckInterval"] = "00:00:00.050",
        });
        _c = _factory.CreateClient();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _c.Dispose();
        await _factory.DisposeAsync();
        BrokerFactory.TryDelete(_dataPath);
    }

    [Fact]
    public async Task Filling_the_data_folders_filesystem_past_the_limit_refuses_sends_and_freeing_it_takes_them_again()
    {
        Assert.Equal(HttpStatusCode.Created, (await _c.Post("/v1/topics/disk/messages", new { body = new { n = 1 } })).Status);

        var filler = Path.Combine(_dataPath, "filler.bin");
        await using (var file = File.Create(filler))
        {
            var chunk = new byte[1024 * 1024];
            Random.Shared.NextBytes(chunk); // tmpfs stores what it is given; no sparse file
            for (var i = 0; i < 3 * Margin / chunk.Length; i++) await file.WriteAsync(chunk);
        }
        await Eventually.Until(() => _c.Get("/health/ready"), a => a.Raw.StartsWith("Degraded", StringComparison.Ordinal), "the filled filesystem noticed");
        var refused = await _c.Post("/v1/topics/disk/messages", new { body = new { n = 2 } });
        Assert.Equal((HttpStatusCode.InsufficientStorage, "insufficient-storage"), (refused.Status, refused.Code));

        File.Delete(filler);
        await Eventually.Until(() => _c.Post("/v1/topics/disk/messages", new { body = new { n = 3 } }),
            a => a.Status == HttpStatusCode.Created, "sends taken again once the space is freed");
    }
}
