using System.Globalization;
using System.Text;

namespace HalfMsgBroker.Bench;

/// <summary>One line of the results table.</summary>
internal sealed record Row(
    string Workload,
    string System,
    string Mode,
    long Messages,
    double PerSecond,
    double P50Ms,
    double P99Ms,
    double MaxMs,
    double CpuSecondsPer1k,
    double RssMiB,
    string Notes)
{
    /// <summary>The broker's storage provider (LiteDB, PostgreSQL); empty for RabbitMQ.</summary>
    public string Storage { get; init; } = "";

    /// <summary>With PostgreSQL storage: the cluster's CPU (all its processes) per 1,000 messages, beside the broker's own.</summary>
    public double DbCpuSecondsPer1k { get; init; } = double.NaN;

    public static Row NotRun(string workload, string system, string mode, string why) =>
        new(workload, system, mode, 0, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, why);
}

internal static class Report
{
    private static string F(double v, string format) =>
        double.IsNaN(v) || double.IsInfinity(v) ? "—" : v.ToString(format, CultureInfo.InvariantCulture);

    public static string Table(IEnumerable<Row> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| # workload | system | storage | mode | msgs | msg/s | p50 ms | p99 ms | max ms | CPU s/1k msgs | PG CPU s/1k msgs | RSS MiB | notes |");
        sb.AppendLine("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        foreach (var r in rows)
        {
            sb.Append("| ").Append(r.Workload)
              .Append(" | ").Append(r.System)
              .Append(" | ").Append(r.Storage.Length == 0 ? "—" : r.Storage)
              .Append(" | ").Append(r.Mode)
              .Append(" | ").Append(r.Messages == 0 ? "—" : r.Messages.ToString(CultureInfo.InvariantCulture))
              .Append(" | ").Append(F(r.PerSecond, "F0"))
              .Append(" | ").Append(F(r.P50Ms, "F1"))
              .Append(" | ").Append(F(r.P99Ms, "F1"))
              .Append(" | ").Append(F(r.MaxMs, "F0"))
              .Append(" | ").Append(F(r.CpuSecondsPer1k, "F3"))
              .Append(" | ").Append(F(r.DbCpuSecondsPer1k, "F3"))
              .Append(" | ").Append(F(r.RssMiB, "F0"))
              .Append(" | ").Append(r.Notes.Replace("|", "/", StringComparison.Ordinal))
              .AppendLine(" |");
        }
        return sb.ToString();
    }

    public static string MachineLine()
    {
        var cores = Environment.ProcessorCount;
        var model = "?";
        long memKb = 0;
        try
        {
            model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
            var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            memKb = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
        }
        return $"{cores} cores ({model}), {memKb / 1024.0 / 1024.0:F1} GiB memory, {Environment.OSVersion.VersionString}, .NET {Environment.Version}";
    }
}
