using Microsoft.Extensions.FileProviders;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// How the broker reloads appsettings*.json. ASP.NET Core's default watches them with one
/// FileSystemWatcher over the whole content root, subdirectories included, and the default data
/// folder (<c>./data</c>) lies inside the content root: every journal append and LiteDB write became
/// an inotify event that the watcher's thread read and threw away, about 3 % of the broker's CPU
/// under full load. The broker turns that watch off before it is made and polls the settings files
/// instead (every 4 s), so an edited file still reloads what reloads (log levels) and no folder is watched.
/// </summary>
public static class SettingsFiles
{
    /// <summary>Host setting read by the default configuration: the JSON sources are added without a watch.</summary>
    private const string NoFolderWatch = "--hostBuilder:reloadConfigOnChange=false";

    /// <summary><see cref="WebApplication.CreateBuilder(string[])"/>, with the settings files polled rather than watched.</summary>
    public static WebApplicationBuilder CreateBuilder(string[] args)
    {
        var builder = WebApplication.CreateBuilder([.. args, NoFolderWatch]);
        var polling = new List<PhysicalFileProvider>();
        var sources = builder.Configuration.Sources;
        for (var i = 0; i < sources.Count; i++)
        {
            if (sources[i] is not FileConfigurationSource { ReloadOnChange: false, FileProvider: PhysicalFileProvider files } source) continue;
            var provider = new PhysicalFileProvider(files.Root) { UsePollingFileWatcher = true, UseActivePolling = true };
            polling.Add(provider);
            source.FileProvider = provider;
            source.ReloadOnChange = true;
            // The configuration builds a source's provider when the source is added or replaced, not when it changes.
            sources[i] = source;
        }
        builder.Services.AddHostedService(_ => new PollingOwner(polling));
        return builder;
    }

    /// <summary>Stops the polling timers with the host (a test run starts hundreds of hosts in one process).</summary>
    private sealed class PollingOwner(List<PhysicalFileProvider> providers) : IHostedService, IDisposable
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void Dispose()
        {
            foreach (var provider in providers) provider.Dispose();
        }
    }
}
