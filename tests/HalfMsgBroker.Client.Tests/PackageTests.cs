using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;

namespace HalfMsgBroker.Client.Tests;

/// <summary>
/// <c>dotnet pack</c> of the SDK (already built by this test run, so <c>--no-build</c>) makes a package that
/// carries its README and the metadata a feed shows.
/// </summary>
public sealed class PackageTests : IDisposable
{
    private readonly string _output = Path.Combine(Path.GetTempPath(), "halfmsg-pack-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_output))
        {
            Directory.Delete(_output, recursive: true);
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "HalfMsgBroker.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("HalfMsgBroker.sln not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public async Task Pack_makes_a_package_with_the_readme_license_and_repository()
    {
        // The configuration this test was built in (bin/<Configuration>/net10.0): the SDK was built in it too.
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;
        var project = Path.Combine(RepositoryRoot(), "client-sdk", "HalfMsgBroker.Client.csproj");
        var start = new ProcessStartInfo("dotnet", ["pack", project, "--no-build", "--no-restore", "-c", configuration, "-o", _output, "-v", "q", "-nologo"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var pack = Process.Start(start)!;
        var output = pack.StandardOutput.ReadToEndAsync();
        var error = pack.StandardError.ReadToEndAsync();
        await pack.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(pack.ExitCode == 0, $"dotnet pack failed ({pack.ExitCode}):\n{await output}\n{await error}");

        var package = Assert.Single(Directory.GetFiles(_output, "HalfMsgBroker.Client.*.nupkg"));
        using var zip = ZipFile.OpenRead(package);
        var readme = zip.GetEntry("README.md");
        Assert.NotNull(readme);
        using (var reader = new StreamReader(readme.Open()))
        {
            var text = await reader.ReadToEndAsync();
            Assert.Contains("## Reference it", text, StringComparison.Ordinal);
            Assert.Contains("IHalfMsgHandler<T>", text, StringComparison.Ordinal);
        }

        Assert.Contains(zip.Entries, e => e.FullName == "lib/net10.0/HalfMsgBroker.Client.dll");
        Assert.Contains(zip.Entries, e => e.FullName == "lib/net10.0/HalfMsgBroker.Client.xml");

        var nuspecEntry = Assert.Single(zip.Entries, e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal));
        XDocument nuspec;
        using (var stream = nuspecEntry.Open())
        {
            nuspec = await XDocument.LoadAsync(stream, LoadOptions.None, CancellationToken.None);
        }

        var metadata = nuspec.Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        string? Field(string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value;
        Assert.Equal("HalfMsgBroker.Client", Field("id"));
        Assert.Equal("README.md", Field("readme"));
        Assert.Equal("MIT", Field("license"));
        Assert.False(string.IsNullOrWhiteSpace(Field("description")));
        var repository = metadata.Elements().Single(e => e.Name.LocalName == "repository");
        Assert.Equal("git", repository.Attribute("type")?.Value);
        Assert.False(string.IsNullOrEmpty(repository.Attribute("url")?.Value));
    }
}
