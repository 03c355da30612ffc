using System.Diagnostics;
using System.Globalization;

namespace HalfMsgBroker.Bench;

/// <summary>
/// A private PostgreSQL cluster for one run (<c>--storage postgresql</c>): initdb into a folder of its own,
/// postgres on a free 127.0.0.1 port, a fresh database per broker process, stopped by its PID at the end
/// (SIGINT, PostgreSQL's fast shutdown; SIGKILL after 30 s). As root it runs as the <c>postgres</c> user,
/// since PostgreSQL refuses root. Durability is PostgreSQL's default, the same promise as the broker's
/// <c>Fsync</c> mode: <c>fsync</c> and <c>synchronous_commit</c> on, so a commit is answered once its WAL
/// is flushed.
/// </summary>
internal sealed class PostgresServer : IAsyncDisposable
{
    private readonly string _folder;
    private readonly string _bin;
    private readonly Action<string> _log;
    private int _databases;
    private bool _trackStatements;

    public int Pid { get; private set; }
    public int Port { get; private set; }
    public string Version { get; private set; } = "";
    public string LogPath => Path.Combine(_folder, "server.log");

    private PostgresServer(string folder, string bin, Action<string> log)
    {
        _folder = folder;
        _bin = bin;
        _log = log;
    }

    /// <summary>Where initdb and pg_ctl are: /usr/local/bin, /usr/bin, or the newest /usr/lib/postgresql/N/bin (Debian).</summary>
    public static string? FindBinDirectory()
    {
        string[] candidates = ["/usr/local/bin", "/usr/bin",
            .. Directory.Exists("/usr/lib/postgresql")
                ? Directory.GetDirectories("/usr/lib/postgresql").OrderByDescending(d => int.TryParse(Path.GetFileName(d), out var v) ? v : 0).Select(d => Path.Combine(d, "bin"))
                : []];
        return candidates.FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "pg_ctl")) && File.Exists(Path.Combine(d, "createdb")) && File.Exists(Path.Combine(d, "psql")));
    }

    /// <param name="folder">A folder that does not exist yet, in a parent the <c>postgres</c> user can enter.</param>
    /// <param name="trackStatements">Load <c>pg_stat_statements</c>, for <see cref="TopStatementsAsync"/>.</param>
    public static async Task<PostgresServer> StartAsync(string folder, Action<string> log, bool trackStatements = false)
    {
        var bin = FindBinDirectory() ?? throw new InvalidOperationException(
            "--storage postgresql needs PostgreSQL's initdb, pg_ctl, createdb and psql (Debian: apt-get install postgresql; bench/run.sh installs it)");
        if (Environment.IsPrivilegedProcess && !File.Exists("/usr/sbin/runuser"))
        {
            throw new InvalidOperationException("running as root without /usr/sbin/runuser to start PostgreSQL as the postgres user");
        }
        if (Directory.Exists(folder)) throw new InvalidOperationException($"{folder} exists already; give --pg-folder a new path");
        Directory.CreateDirectory(folder);
        var server = new PostgresServer(folder, bin, log) { _trackStatements = trackStatements };
        try
        {
            await server.InitAndStartAsync();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    private async Task InitAndStartAsync()
    {
        if (Environment.IsPrivilegedProcess) await RunAsync("/bin/chown", "postgres", _folder);
        var data = Path.Combine(_folder, "data");
        await RunToolAsync("initdb", "-D", data, "-A", "trust", "-U", "halfmsg", "-E", "UTF8");
        Port = BrokerHost.FreePort();
        // Only where it listens and how many may connect change; fsync, synchronous_commit and
        // full_page_writes keep their defaults (on): equal durability with the LiteDB rows' Fsync.
        await RunToolAsync("pg_ctl", "-D", data, "-l", LogPath, "-w", "-t", "60", "start",
            "-o", $"-c listen_addresses=127.0.0.1 -p {Port} -k {_folder} -c max_connections=200"
                + (_trackStatements ? " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" : ""));
        Pid = int.Parse((await File.ReadAllLinesAsync(Path.Combine(data, "postmaster.pid")))[0], CultureInfo.InvariantCulture);
        // run.sh's EXIT trap stops whatever is listed here (by PID) if the generator dies first.
        var pidFile = Environment.GetEnvironmentVariable("BENCH_PID_FILE");
        if (!string.IsNullOrEmpty(pidFile)) await File.AppendAllTextAsync(pidFile, $"{Pid}\n");
        Version = (await RunAsync(Path.Combine(_bin, "postgres"), "--version")).Trim();
        _log($"{Version} on 127.0.0.1:{Port} (pid {Pid}, folder {_folder})");
    }

    /// <summary>Creates an empty database for one broker process and returns the broker's connection
    /// string to it (<paramref name="maxPoolSize"/> 0: Npgsql's default).</summary>
    public async Task<(string Database, string ConnectionString)> CreateDatabaseAsync(string prefix, int maxPoolSize)
    {
        var name = new string([.. prefix.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_')]) + "_" + Interlocked.Increment(ref _databases);
        await RunAsync(Path.Combine(_bin, "createdb"), "-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "-U", "halfmsg", name);
        return (name, $"Host=127.0.0.1;Port={Port};Username=halfmsg;Database={name}" + (maxPoolSize > 0 ? $";Max Pool Size={maxPoolSize}" : ""));
    }

    /// <summary>Creates <c>pg_stat_statements</c> in <paramref name="database"/> and empties it, so
    /// <see cref="TopStatementsAsync"/> reports from here on.</summary>
    public async Task ResetStatementsAsync(string database)
    {
        await PsqlAsync(database, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
        await PsqlAsync(database, "SELECT pg_stat_statements_reset()");
    }

    /// <summary>The <paramref name="count"/> statements that took most of the server's time since
    /// <see cref="ResetStatementsAsync"/>, as a markdown table (calls, total and mean ms, rows, text).</summary>
    public async Task<string> TopStatementsAsync(string database, int count)
    {
        var rows = await PsqlAsync(database,
            "SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3), rows, "
            + "regexp_replace(left(query, 160), '\\s+', ' ', 'g') FROM pg_stat_statements "
            + $"ORDER BY total_exec_time DESC LIMIT {count.ToString(CultureInfo.InvariantCulture)}");
        var lines = rows.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(r => "| " + string.Join(" | ", r.Split('|', 5).Select(c => c.Replace("|", "\\|", StringComparison.Ordinal))) + " |");
        return string.Join('\n', ["| calls | total ms | mean ms | rows | statement |", "|---:|---:|---:|---:|---|", .. lines]);
    }

    private Task<string> PsqlAsync(string database, string sql) =>
        RunAsync(Path.Combine(_bin, "psql"), "-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "-U", "halfmsg",
            "-d", database, "-X", "-A", "-t", "-c", sql);

    /// <summary>Tables in a database outside PostgreSQL's own schemas: 0 means no broker has created its schema there.</summary>
    public async Task<int> CountTablesAsync(string database)
    {
        var output = await RunAsync(Path.Combine(_bin, "psql"), "-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "-U", "halfmsg",
            "-d", database, "-X", "-A", "-t", "-c",
            "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')");
        return int.Parse(output.Trim(), CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// CPU seconds (user + system) of the whole cluster so far: the postmaster and every process it
    /// started (backends, WAL writer, checkpointer, …), each with the time of its own children that
    /// ended (cutime + cstime), so a backend that exited within a window still counts.
    /// </summary>
    public double CpuSeconds()
    {
        if (Pid <= 0) return 0;
        var total = Proc.CpuSecondsWithChildren(Pid);
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Pid) continue;
            if (Proc.ParentPid(pid) == Pid) total += Proc.CpuSecondsWithChildren(pid);
        }
        return total;
    }

    public async ValueTask DisposeAsync()
    {
        if (Pid > 0 && Proc.Alive(Pid))
        {
            Proc.Signal(Pid, Proc.SigInt);
            var deadline = Stopwatch.GetTimestamp() + 30 * Stopwatch.Frequency;
            while (Proc.Alive(Pid) && Stopwatch.GetTimestamp() < deadline) await Task.Delay(100);
            if (Proc.Alive(Pid))
            {
                _log($"PostgreSQL pid {Pid} still running 30 s after SIGINT: SIGKILL");
                Proc.Signal(Pid, Proc.SigKill);
            }
        }
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("BENCH_KEEP")))
        {
            try
            {
                Directory.Delete(_folder, recursive: true);
            }
            catch (IOException e)
            {
                _log($"could not delete {_folder}: {e.Message}");
            }
        }
        else
        {
            _log($"PostgreSQL folder kept: {_folder}");
        }
    }

    private Task<string> RunToolAsync(string tool, params string[] arguments) =>
        Environment.IsPrivilegedProcess
            ? RunAsync("/usr/sbin/runuser", ["-u", "postgres", "--", Path.Combine(_bin, tool), .. arguments])
            : RunAsync(Path.Combine(_bin, tool), arguments);

    private static async Task<string> RunAsync(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await output} {await error}");
        }
        return await output;
    }
}
