using System.Globalization;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>The thread that copies journaled changes into LiteDB runs at a lower CPU priority than the request path.</summary>
[Trait("Storage", "LiteDb")]
public sealed class ApplierPriorityTests
{
    /// <summary>The nice value of each of this process's applier threads (the kernel cuts a thread's name to 15 characters).</summary>
    private static List<int> ApplierNiceValues() =>
        [.. Directory.GetDirectories("/proc/self/task")
            .Where(task => File.Exists(Path.Combine(task, "comm")) && File.ReadAllText(Path.Combine(task, "comm")).Trim() == "halfmsg-store-a")
            .Select(task => File.ReadAllText(Path.Combine(task, "stat")))
            // Field 19 of /proc/<pid>/task/<tid>/stat is the nice value; the thread's name, field 2, is in parentheses.
            .Select(stat => int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[16], CultureInfo.InvariantCulture))];

    [SkippableFact]
    public async Task The_applier_thread_runs_at_nice_10()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "thread priorities are lowered on Linux only");
        await using var broker = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Storage:Provider"] = "LiteDb" });
        _ = broker.Services; // starts the host, and with it the applier

        // Every broker of this test process has an applier; all of them lower their own priority as they start.
        await Eventually.Until(() => ApplierNiceValues() is { Count: > 0 } values && values.TrueForAll(n => n == BackgroundPriority.ApplierNice),
            "the applier threads at nice 10");

        Assert.All(ApplierNiceValues(), n => Assert.Equal(10, n));
    }
}
