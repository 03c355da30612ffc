using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace HalfMsgBroker.Tests.Shared;

/// <summary>
/// A private PostgreSQL cluster for a test class (or a whole test run): initdb into a temp folder, postgres on a free
/// 127.0.0.1 port (and a socket in that folder), stopped by its PID and deleted afterwards. As root it
/// runs as the <c>postgres</c> user, since PostgreSQL refuses root.
/// </summary>
public sealed class PostgresCluster : IAsyncLifetime
{
    /// <summary>
    /// Where initdb and pg_ctl are: on PATH's /usr/local/bin on this machine, under /usr/lib/postgresql/N/bin
    /// where Debian's package put them (<c>.ci/run</c> installs it when neither is there).
    /// </summary>
    public static readonly string BinDirectory = FindBinDirectory();

    private readonly string _folder = Path.Combine(Path.GetTempPath(), "halfmsg-pg-" + Guid.NewGuid().ToString("N")[..10]);
    private int? _pid;

    /// <summary>Why PostgreSQL tests cannot run here, or null when they can.</summary>
    public static string? Unavailable =>
        !File.Exists(Path.Combine(BinDirectory, "initdb")) || !File.Exists(Path.Combine(BinDirectory, "pg_ctl"))
            ? $"PostgreSQL binaries (initdb, pg_ctl) not found in {BinDirectory}"
            : Environment.IsPrivilegedProcess && !File.Exists("/usr/sbin/runuser")
                ? "running as root without runuser to start PostgreSQL as another user"
                : null;

    public string ConnectionString { get; private set; } = "";

    private int _databases;

    /// <summary>
    /// Creates an empty database of its own (tests that share one cluster stay apart) and returns a
    /// connection string to it.
    /// </summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "t")
    {
        var name = $"{prefix}_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid():N}"[..Math.Min(63, prefix.Length + 34)];
        await using var connection = new Npgsql.NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var create = new Npgsql.NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await create.ExecuteNonQueryAsync();
        return new Npgsql.NpgsqlConnectionStringBuilder(ConnectionString) { Database = name }.ConnectionString;
    }

    public async Task InitializeAsync()
    {
        if (Unavailable is not null)
        {
            return;
        }

        Directory.CreateDirectory(_folder);
        if (Environment.IsPrivilegedProcess)
        {
            await RunAsync("/bin/chown", "postgres", _folder);
        }

        var data = Path.Combine(_folder, "data");
        await RunPostgresToolAsync("initdb", "-D", data, "-A", "trust", "-U", "halfmsg", "--no-sync", "-E", "UTF8");
        var port = FreePort();
        _serverOptions = $"-c listen_addresses=127.0.0.1 -p {port} -k {_folder} -c fsync=off -c max_connections=200";
        await StartServerAsync();
        ConnectionString = $"Host=127.0.0.1;Port={port};Username=halfmsg;Database=postgres;Timeout=30;Command Timeout=30";
    }

    private string _serverOptions = "";

    private async Task StartServerAsync()
    {
        var data = Path.Combine(_folder, "data");
        await RunPostgresToolAsync("pg_ctl", "-D", data, "-l", Path.Combine(_folder, "server.log"), "-w", "-t", "60", "start", "-o", _serverOptions);
        _pid = int.Parse((await File.ReadAllLinesAsync(Path.Combine(data, "postmaster.pid")))[0], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Stops the server (fast shutdown: every session is ended), keeps it down for <paramref name="downFor"/>, and starts it
    /// again on the same port: PostgreSQL restarting under its clients.
    /// </summary>
    public async Task RestartAsync(TimeSpan downFor)
    {
        await RunPostgresToolAsync("pg_ctl", "-D", Path.Combine(_folder, "data"), "-w", "-t", "60", "stop", "-m", "fast");
        _pid = null;
        await Task.Delay(downFor);
        await StartServerAsync();
    }

    public async Task DisposeAsync()
    {
        if (_pid is { } pid)
        {
            // SIGINT: PostgreSQL's fast shutdown. SIGKILL if it has not ended in 30 s. The postmaster is not our child,
            // so its end is seen in /proc: waiting on a Process for it returned early, and the folder, deleted while
            // PostgreSQL still wrote its shutdown checkpoint, stayed behind (300 MB a cluster, every run).
            await RunAsync("/bin/kill", "-INT", pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (!await GoneWithin(pid, TimeSpan.FromSeconds(30)))
            {
                await RunAsync("/bin/kill", "-KILL", pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
                await GoneWithin(pid, TimeSpan.FromSeconds(10));
            }
        }

        // Its backends may outlive the postmaster for a moment, still closing files in the folder.
        var deadline = Stopwatch.GetTimestamp() + 10 * Stopwatch.Frequency;
        while (true)
        {
            try
            {
                if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
                return;
            }
            catch (IOException) when (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(100);
            }
            catch (IOException)
            {
                return;
            }
        }
    }

    private static async Task<bool> GoneWithin(int pid, TimeSpan limit)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(limit.TotalSeconds * Stopwatch.Frequency);
        while (Directory.Exists($"/proc/{pid}") && !IsZombie(pid))
        {
            if (Stopwatch.GetTimestamp() >= deadline) return false;
            await Task.Delay(50);
        }
        return true;
    }

    // A postmaster started through pg_ctl is reparented; until its new parent reaps it, it lingers as a zombie that has ended.
    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat.Length > stat.LastIndexOf(')') + 2 && stat[stat.LastIndexOf(')') + 2] == 'Z';
        }
        catch (IOException)
        {
            return true;
        }
    }

    private Task RunPostgresToolAsync(string tool, params string[] arguments) =>
        Environment.IsPrivilegedProcess
            ? RunAsync("/usr/sbin/runuser", ["-u", "postgres", "--", Path.Combine(BinDirectory, tool), .. arguments])
            : RunAsync(Path.Combine(BinDirectory, tool), arguments);

    private static async Task RunAsync(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await output} {await error}");
        }
    }

    private static string FindBinDirectory()
    {
        string[] candidates = ["/usr/local/bin", "/usr/bin",
            .. Directory.Exists("/usr/lib/postgresql")
                ? Directory.GetDirectories("/usr/lib/postgresql").OrderDescending(StringComparer.Ordinal).Select(d => Path.Combine(d, "bin"))
                : []];
        return candidates.FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "pg_ctl")))
            ?? "/usr/local/bin";
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}

/// <summary>A fact that is skipped where PostgreSQL cannot be started (<see cref="PostgresCluster.Unavailable"/>).</summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (PostgresCluster.Unavailable is { } reason)
        {
            Skip = reason;
        }
    }
}
