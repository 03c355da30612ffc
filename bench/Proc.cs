using System.Globalization;
using System.Runtime.InteropServices;

namespace HalfMsgBroker.Bench;

/// <summary>Reads CPU time and memory of a process straight from /proc, so the broker, RabbitMQ's
/// beam.smp and the load generator are measured the same way, whatever else runs on the machine.</summary>
internal static partial class Proc
{
    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long SysConf(int name);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    public const int SigTerm = 15;
    public const int SigKill = 9;
    public const int SigInt = 2;

    private static readonly long ClockTicks = TicksPerSecond();

    private static long TicksPerSecond()
    {
        try
        {
            var t = SysConf(2); // _SC_CLK_TCK
            return t > 0 ? t : 100;
        }
        catch (Exception)
        {
            return 100;
        }
    }

    public static bool Signal(int pid, int signal) => Kill(pid, signal) == 0;

    public static bool Alive(int pid) => pid > 0 && File.Exists($"/proc/{pid}/stat") && !IsZombie(pid);

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var rest = stat[(stat.LastIndexOf(')') + 2)..];
            return rest.StartsWith('Z');
        }
        catch (IOException)
        {
            return true;
        }
    }

    /// <summary>User + system CPU seconds the process has used so far (0 when it is gone).</summary>
    public static double CpuSeconds(int pid)
    {
        if (pid <= 0) return 0;
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after "(comm)": state is field 3, utime 14, stime 15.
            var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture);
            return ticks / (double)ClockTicks;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return 0;
        }
    }

    /// <summary>User + system CPU seconds of the process and of its children that have ended and been
    /// waited for (cutime + cstime), or 0 when it is gone.</summary>
    public static double CpuSecondsWithChildren(int pid)
    {
        var f = StatFields(pid);
        if (f is null) return 0;
        // Fields after "(comm)", counted from 0: utime 11, stime 12, cutime 13, cstime 14.
        long ticks = 0;
        for (var i = 11; i <= 14; i++) ticks += long.Parse(f[i], CultureInfo.InvariantCulture);
        return ticks / (double)ClockTicks;
    }

    /// <summary>The parent's PID, or 0 when the process is gone.</summary>
    public static int ParentPid(int pid) => StatFields(pid) is { } f ? int.Parse(f[1], CultureInfo.InvariantCulture) : 0;

    /// <summary>/proc/PID/stat split after "(comm)" (state is index 0), or null when the process is gone.</summary>
    private static string[]? StatFields(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Resident set size in MiB (VmRSS), or VmHWM for the peak.</summary>
    public static double RssMiB(int pid, string field = "VmRSS")
    {
        if (pid <= 0) return 0;
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (!line.StartsWith(field + ":", StringComparison.Ordinal)) continue;
                var kb = long.Parse(line.AsSpan(field.Length + 1).Trim().ToString().Split(' ')[0], CultureInfo.InvariantCulture);
                return kb / 1024.0;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
        }
        return 0;
    }

    /// <summary>Busy CPU seconds of the whole machine (all cores) from /proc/stat.</summary>
    public static double MachineBusySeconds()
    {
        try
        {
            var first = File.ReadLines("/proc/stat").First();
            var f = first.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long busy = 0;
            for (var i = 1; i < f.Length && i <= 8; i++)
            {
                if (i == 4 || i == 5) continue; // idle, iowait
                busy += long.Parse(f[i], CultureInfo.InvariantCulture);
            }
            return busy / (double)ClockTicks;
        }
        catch (Exception e) when (e is IOException or FormatException)
        {
            return 0;
        }
    }

    public static double SelfCpuSeconds() => Environment.ProcessId is var p ? CpuSeconds(p) : 0;

    public static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
    }

    public static long DirectoryBytes(string dir)
    {
        if (!Directory.Exists(dir)) return 0;
        return new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
    }
}

/// <summary>CPU of one process, of the generator itself, of the database cluster (with
/// <c>--storage postgresql</c>, else 0) and of the machine over a measured window.</summary>
internal readonly record struct CpuSnapshot(double Target, double Self, double Machine, long Timestamp, double Database)
{
    public static CpuSnapshot Take(int targetPid, PostgresServer? database = null) => Take([targetPid], database);

    /// <summary>The target is every process in <paramref name="targetPids"/> (several broker nodes), summed.</summary>
    public static CpuSnapshot Take(IReadOnlyList<int> targetPids, PostgresServer? database = null) =>
        new(targetPids.Sum(Proc.CpuSeconds), Proc.SelfCpuSeconds(), Proc.MachineBusySeconds(), System.Diagnostics.Stopwatch.GetTimestamp(), database?.CpuSeconds() ?? 0);
}

internal readonly record struct CpuDelta(double TargetSeconds, double SelfSeconds, double OthersSeconds, double WallSeconds, double DatabaseSeconds)
{
    public static CpuDelta Between(CpuSnapshot a, CpuSnapshot b)
    {
        var wall = System.Diagnostics.Stopwatch.GetElapsedTime(a.Timestamp, b.Timestamp).TotalSeconds;
        var target = b.Target - a.Target;
        var self = b.Self - a.Self;
        var database = b.Database - a.Database;
        var others = Math.Max(0, (b.Machine - a.Machine) - target - self - database);
        return new CpuDelta(target, self, others, wall, database);
    }

    /// <summary>How busy everything else on the machine was, in cores: the noise indicator.</summary>
    public double OtherCores => WallSeconds > 0 ? OthersSeconds / WallSeconds : 0;
}
