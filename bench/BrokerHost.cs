using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace HalfMsgBroker.Bench;

/// <summary>One broker process started by the generator on loopback, on a data path of its own, with
/// two Kestrel endpoints: HTTP/1.1 and HTTP/2 without TLS (h2c, as the README's "HTTP/2" section sets it up).
/// It is stopped by its PID (SIGTERM, then SIGKILL) and never by name.</summary>
internal sealed class BrokerHost : IAsyncDisposable
{
    private readonly string _dll;
    private readonly string[] _extraArgs;
    private Process? _process;
    private int _externalPid;

    /// <summary>Given to the broker in its environment, not its command line, which the log below records.</summary>
    private string? _adminKey;

    /// <summary>With PostgreSQL storage: ConnectionStrings:HalfMsg, also given in the environment.</summary>
    private string? _connectionString;

    public string DataPath { get; }
    public string LogPath { get; }
    public int Port { get; private set; }
    public int H2cPort { get; private set; }
    public int Pid => _externalPid != 0 ? _externalPid : _process is { HasExited: false } p ? p.Id : 0;

    /// <summary>The HTTP/1.1 endpoint.</summary>
    public Uri BaseUri => new($"http://127.0.0.1:{Port}/");

    /// <summary>The h2c endpoint (HTTP/2 with prior knowledge).</summary>
    public Uri H2cUri => new($"http://127.0.0.1:{H2cPort}/");

    /// <summary>The endpoint a workload's client uses: h2c unless <c>http1</c>.</summary>
    public Uri UriFor(bool http1) => http1 ? BaseUri : H2cUri;

    /// <summary>With <c>--keys</c>: the keys the workloads use; otherwise null (keyless, loopback).</summary>
    public BenchKeys? Keys { get; private set; }

    /// <summary>Milliseconds from process start to the first 200 of /health/ready.</summary>
    public double ReadyMs { get; private set; }

    private BrokerHost(string dll, string dataPath, string logPath, string[] extraArgs)
    {
        _dll = dll;
        DataPath = dataPath;
        LogPath = logPath;
        _extraArgs = extraArgs;
    }

    /// <summary>The bench's name for <c>Fsync</c> with <c>Broker:Storage:VisibleBeforeFsync</c> on.</summary>
    public const string VisibleMode = "Fsync-visible";

    public static Task<BrokerHost> StartAsync(Settings s, string name, string mode, params string[] extraArgs) =>
        StartAsync(s, name, mode, BrokerStorage.LiteDb, extraArgs);

    public static async Task<BrokerHost> StartAsync(Settings s, string name, string mode, BrokerStorage storage, params string[] extraArgs)
    {
        if (s.ExternalBrokerUrl is { } url)
        {
            return new BrokerHost("", "", "", [])
            {
                Port = url.Port,
                H2cPort = s.ExternalBrokerH2cUrl?.Port ?? url.Port,
                _externalPid = s.ExternalBrokerPid,
            };
        }
        if (s.BrokerDll is null) throw new InvalidOperationException("--broker-dll is required for broker workloads");
        var dir = Path.Combine(s.WorkDir, name);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        var args = mode == VisibleMode
            ? new List<string> { "--Broker:Storage:Durability=Fsync", "--Broker:Storage:VisibleBeforeFsync=true" }
            : new List<string> { $"--Broker:Storage:Durability={mode}" };
        string? connectionString = null, database = null;
        if (storage.Postgres is { } postgres)
        {
            args.Add("--Broker:Storage:Provider=PostgreSql");
            (database, connectionString) = await postgres.CreateDatabaseAsync(name, storage.MaxPoolSize);
        }
        var adminKey = s.Keys ? "bench-admin-" + Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24)) : null;
        args.AddRange(extraArgs);
        args.AddRange(s.BrokerArgs);
        var host = new BrokerHost(s.BrokerDll, Path.Combine(dir, "data"), Path.Combine(s.WorkDir, name + ".log"), [.. args]) { _adminKey = adminKey, _connectionString = connectionString };
        await host.StartProcessAsync();
        // A broker build without the PostgreSQL provider ignores the key and runs on LiteDB: refuse to
        // report such rows as PostgreSQL ones.
        if (storage.Postgres is not null && await storage.Postgres.CountTablesAsync(database!) == 0)
        {
            await host.StopAsync(TimeSpan.FromSeconds(10));
            throw new InvalidOperationException($"the broker is ready but created no tables in PostgreSQL database {database}: this broker build has no PostgreSQL provider (Broker:Storage:Provider=PostgreSql); see {host.LogPath}");
        }
        if (adminKey is not null) host.Keys = await BenchKeys.CreateAsync(host.BaseUri, adminKey);
        return host;
    }

    /// <summary>
    /// <paramref name="nodes"/> broker processes on ONE fresh database of <paramref name="storage"/>'s cluster, all
    /// active (<c>Broker:Storage:PostgreSql:MultiActive=true</c>), in <c>Fsync</c> mode (on PostgreSQL a 2xx waits
    /// for the WAL flush whatever the mode). Keyless: the workloads run on loopback.
    /// </summary>
    public static async Task<IReadOnlyList<BrokerHost>> StartNodesAsync(Settings s, string name, BrokerStorage storage, int nodes)
    {
        if (s.BrokerDll is null) throw new InvalidOperationException("--broker-dll is required for broker workloads");
        var postgres = storage.Postgres ?? throw new InvalidOperationException("several broker nodes need PostgreSQL storage");
        var (database, connectionString) = await postgres.CreateDatabaseAsync(name, storage.MaxPoolSize);
        var hosts = new List<BrokerHost>();
        try
        {
            for (var i = 1; i <= nodes; i++)
            {
                var dir = Path.Combine(s.WorkDir, $"{name}-n{i}");
                if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
                Directory.CreateDirectory(dir);
                string[] args = ["--Broker:Storage:Durability=Fsync", "--Broker:Storage:Provider=PostgreSql", "--Broker:Storage:PostgreSql:MultiActive=true", .. s.BrokerArgs];
                var host = new BrokerHost(s.BrokerDll, Path.Combine(dir, "data"), Path.Combine(s.WorkDir, $"{name}-n{i}.log"), args) { _connectionString = connectionString };
                hosts.Add(host);
                await host.StartProcessAsync();
            }
            if (await postgres.CountTablesAsync(database) == 0)
            {
                throw new InvalidOperationException($"the brokers are ready but created no tables in PostgreSQL database {database}: this broker build has no PostgreSQL provider");
            }
            return hosts;
        }
        catch
        {
            foreach (var host in hosts) await host.DisposeAsync();
            throw;
        }
    }

    /// <summary>A broker on an existing PostgreSQL database (several brokers on one, <c>MultiActive</c>), already started.</summary>
    public static async Task<BrokerHost> StartOnDatabaseAsync(Settings s, string name, string connectionString, params string[] extraArgs)
    {
        var dir = Path.Combine(s.WorkDir, name);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        string[] args = ["--Broker:Storage:Provider=PostgreSql", .. extraArgs, .. s.BrokerArgs];
        var host = new BrokerHost(s.BrokerDll ?? throw new InvalidOperationException("--broker-dll is required"), Path.Combine(dir, "data"),
            Path.Combine(s.WorkDir, name + ".log"), args) { _connectionString = connectionString };
        await host.StartProcessAsync();
        return host;
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public async Task StartProcessAsync(TimeSpan? readyTimeout = null)
    {
        if (Port == 0) Port = FreePort(); // a restart keeps the ports, so clients keep working
        if (H2cPort == 0) H2cPort = FreePort();
        // Go through sh only to send the broker's console log to a file; `exec` keeps the PID.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardInput = true };
        var cmd = $"exec dotnet '{_dll}' --Kestrel:Endpoints:Http:Url=http://127.0.0.1:{Port} "
                  + $"--Kestrel:Endpoints:H2c:Url=http://127.0.0.1:{H2cPort} --Kestrel:Endpoints:H2c:Protocols=Http2 '--Broker:DataPath={DataPath}' "
                  + string.Join(' ', _extraArgs.Select(a => $"'{a}'")) + $" >> '{LogPath}' 2>&1";
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(cmd);
        if (_adminKey is not null) psi.Environment["Broker__Auth__AdminKey"] = _adminKey;
        if (_connectionString is not null) psi.Environment["ConnectionStrings__HalfMsg"] = _connectionString;
        var started = Stopwatch.GetTimestamp();
        _process = Process.Start(psi) ?? throw new InvalidOperationException("could not start the broker");
        await File.AppendAllTextAsync(LogPath, $"# bench: started pid {_process.Id}: {cmd}\n");
        // run.sh's EXIT trap stops whatever is listed here (by PID) if the generator dies first.
        var pidFile = Environment.GetEnvironmentVariable("BENCH_PID_FILE");
        if (!string.IsNullOrEmpty(pidFile)) await File.AppendAllTextAsync(pidFile, $"{_process.Id}\n");

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = started + (long)((readyTimeout ?? TimeSpan.FromSeconds(90)).TotalSeconds * Stopwatch.Frequency);
        var notFound = 0;
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"broker exited with {_process.ExitCode}; see {LogPath}");
            try
            {
                using var r = await http.GetAsync(new Uri(BaseUri, "health/ready"));
                if (r.StatusCode == HttpStatusCode.OK)
                {
                    ReadyMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    return;
                }
                if (r.StatusCode == HttpStatusCode.NotFound && ++notFound > 250)
                {
                    await StopAsync(TimeSpan.FromSeconds(5));
                    throw new InvalidOperationException("this broker build has no /health/ready");
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            await Task.Delay(20);
        }
        await StopAsync(TimeSpan.FromSeconds(5));
        throw new TimeoutException($"broker not ready within the timeout; see {LogPath}");
    }

    /// <summary>Graceful stop: SIGTERM, wait, then SIGKILL. Returns the milliseconds it took.</summary>
    public async Task<double> StopAsync(TimeSpan? grace = null)
    {
        if (_externalPid != 0) return 0;
        if (_process is null || _process.HasExited) return 0;
        var t = Stopwatch.GetTimestamp();
        Proc.Signal(_process.Id, Proc.SigTerm);
        using var cts = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(20));
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Proc.Signal(_process.Id, Proc.SigKill);
            await _process.WaitForExitAsync();
        }
        return Stopwatch.GetElapsedTime(t).TotalMilliseconds;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(10));
        _process?.Dispose();
    }
}

/// <summary>Where a broker started by the generator keeps its state: its data path (LiteDB, the
/// broker's default) or a fresh database of the run's PostgreSQL cluster.</summary>
/// <param name="MaxPoolSize">Npgsql's Max Pool Size for the broker (0: Npgsql's default).</param>
internal sealed record BrokerStorage(PostgresServer? Postgres, int MaxPoolSize)
{
    public static readonly BrokerStorage LiteDb = new(null, 0);
}
