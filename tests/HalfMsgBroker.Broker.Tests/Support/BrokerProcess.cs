using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace HalfMsgBroker.Tests.Support;

/// <summary>The broker as a separate OS process, so a test can kill it with SIGKILL and start it again.</summary>
public sealed class BrokerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private BrokerProcess(Process process, string url)
    {
        _process = process;
        Url = url;
        Client = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(30) };
        Client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", BrokerFactory.AdminKey);
    }

    public string Url { get; }
    public HttpClient Client { get; }

    /// <summary>The broker's OS process id (what <c>/proc</c> knows it by).</summary>
    public int Pid => _process.Id;

    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _output = new();

    /// <summary>The lines the broker printed to standard output so far.</summary>
    public IReadOnlyCollection<string> OutputLines => _output;

    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _errors = new();

    /// <summary>The lines the broker printed to standard error so far (an unhandled exception lands there).</summary>
    public IReadOnlyCollection<string> ErrorLines => _errors;

    public static async Task<BrokerProcess> Start(string dataPath, params string[] settings)
    {
        var broker = Launch(dataPath, settings);
        await broker.WaitUntilReady();
        return broker;
    }

    /// <summary>
    /// Starts the broker with <paramref name="workingDirectory"/> as its current directory, which is also its
    /// content root (where it reads appsettings.json), as in a plain <c>dotnet HalfMsgBroker.Broker.dll</c>.
    /// </summary>
    public static async Task<BrokerProcess> StartIn(string workingDirectory, string dataPath, params string[] settings)
    {
        var broker = Launch(dataPath, settings, workingDirectory);
        await broker.WaitUntilReady();
        return broker;
    }

    /// <summary>Starts the broker without waiting for it to be ready (a standby broker waits for its database lock first).</summary>
    public static BrokerProcess Launch(string dataPath, params string[] settings) => Launch(dataPath, settings, workingDirectory: null);

    private static BrokerProcess Launch(string dataPath, string[] settings, string? workingDirectory)
    {
        var port = FreePort();
        var url = $"http://127.0.0.1:{port}";
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
        };
        info.ArgumentList.Add(BrokerDll());
        info.ArgumentList.Add("--urls");
        info.ArgumentList.Add(url);
        info.ArgumentList.Add($"--Broker:DataPath={dataPath}");
        info.ArgumentList.Add("--Logging:LogLevel:Default=Warning");
        info.ArgumentList.Add($"--Broker:Auth:AdminKey={BrokerFactory.AdminKey}");
        foreach (var (key, value) in TestStorage.SettingsFor(dataPath)) info.ArgumentList.Add($"--{key}={value}");
        foreach (var s in settings) info.ArgumentList.Add(s);

        var process = Process.Start(info)!;
        var broker = new BrokerProcess(process, url);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null) broker._output.Enqueue(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null) broker._errors.Enqueue(e.Data);
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return broker;
    }

    public async Task WaitUntilReady(TimeSpan? timeout = null) => await Eventually.Until(async () =>
    {
        if (_process.HasExited) throw new Xunit.Sdk.XunitException($"broker exited with {_process.ExitCode}");
        try
        {
            return (await Client.GetAsync(new Uri("/health/ready", UriKind.Relative))).StatusCode;
        }
        catch (HttpRequestException)
        {
            return HttpStatusCode.ServiceUnavailable;
        }
    }, s => s == HttpStatusCode.OK, "broker ready", timeout ?? TimeSpan.FromSeconds(60));

    /// <summary>The process's exit code once it has ended by itself, else null.</summary>
    public int? ExitCode
    {
        get
        {
            if (!_process.HasExited) return null;
            // The wait without a timeout also waits until the redirected output has been read to its end, so
            // a test that reads OutputLines once the process has exited finds its last lines there.
            _process.WaitForExit();
            return _process.ExitCode;
        }
    }

    /// <summary>
    /// Runs the broker's dll with <paramref name="arguments"/> (a journal command, or a start expected to fail)
    /// until it exits; returns its exit code and everything it printed.
    /// </summary>
    public static async Task<(int ExitCode, string Output)> RunToExit(string dataPath, params string[] arguments)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(BrokerDll());
        foreach (var a in arguments) info.ArgumentList.Add(a);
        info.ArgumentList.Add($"--Broker:DataPath={dataPath}");
        info.ArgumentList.Add($"--Broker:Auth:AdminKey={BrokerFactory.AdminKey}");
        foreach (var (key, value) in TestStorage.SettingsFor(dataPath)) info.ArgumentList.Add($"--{key}={value}");
        info.ArgumentList.Add("--urls");
        info.ArgumentList.Add($"http://127.0.0.1:{FreePort()}");
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException("the broker did not exit within 60 s: " + string.Join(' ', arguments));
        }
        return (process.ExitCode, await output + await error);
    }

    /// <summary>SIGKILL: no shutdown code runs, exactly like a crash.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) Kill();
        Client.Dispose();
        _process.Dispose();
        await Task.CompletedTask;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The broker's own build output (same configuration as the tests), found from the solution root.</summary>
    private static string BrokerDll()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        var configuration = dir.Parent!.Name; // …/bin/{Configuration}/net10.0/
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "HalfMsgBroker.sln"))) dir = dir.Parent;
        if (dir is null) throw new InvalidOperationException("HalfMsgBroker.sln not found above " + AppContext.BaseDirectory);
        return Path.Combine(dir.FullName, "broker", "bin", configuration, "net10.0", "HalfMsgBroker.Broker.dll");
    }
}
