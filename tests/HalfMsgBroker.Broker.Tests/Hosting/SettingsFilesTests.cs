using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Hosting;

/// <summary>
/// The default layout puts the data folder inside the content root. ASP.NET Core's default settings
/// watch would turn every journal and LiteDB write into an inotify event for the broker to read; the
/// broker polls its settings files instead, and an edited file still reloads.
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class SettingsFilesTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "halfmsg-settings", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_root);

    private static string Settings(string healthCheckLevel) =>
        $$"""{ "Logging": { "LogLevel": { "Microsoft.Extensions.Diagnostics.HealthChecks": "{{healthCheckLevel}}" } } }""";

    [Fact]
    public async Task With_its_data_folder_in_the_content_root_the_broker_watches_no_folder_and_still_reloads_an_edited_appsettings_json()
    {
        Assert.True(Directory.Exists("/proc/self/fdinfo"), "this test reads inotify watches from /proc (Linux)");
        Directory.CreateDirectory(_root);
        var settingsFile = Path.Combine(_root, "appsettings.json");
        await File.WriteAllTextAsync(settingsFile, Settings("Warning"));

        await using var broker = await BrokerProcess.StartIn(_root, Path.Combine(_root, "data"));
        for (var i = 0; i < 20; i++) await broker.Client.Send("orders", new { i });

        Assert.Equal(0, InotifyWatches(broker.Pid));
        Assert.DoesNotContain(broker.OutputLines, l => l.Contains("Running health checks", StringComparison.Ordinal));

        await File.WriteAllTextAsync(settingsFile, Settings("Debug"));
        await Eventually.Until(async () =>
        {
            await broker.Client.GetAsync(new Uri("/health/ready", UriKind.Relative));
            return broker.OutputLines.Any(l => l.Contains("Running health checks", StringComparison.Ordinal));
        }, seen => seen, "the health checks' debug log after appsettings.json asked for it", TimeSpan.FromSeconds(30));
        Assert.Equal(0, InotifyWatches(broker.Pid));
    }

    /// <summary>Every inotify watch the process holds, over all its inotify descriptors.</summary>
    private static int InotifyWatches(int pid)
    {
        var watches = 0;
        foreach (var fd in Directory.GetFiles($"/proc/{pid}/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(fd).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed while we looked
            }
            if (target != "anon_inode:inotify") continue;
            watches += File.ReadLines($"/proc/{pid}/fdinfo/{Path.GetFileName(fd)}").Count(l => l.StartsWith("inotify wd:", StringComparison.Ordinal));
        }
        return watches;
    }
}
