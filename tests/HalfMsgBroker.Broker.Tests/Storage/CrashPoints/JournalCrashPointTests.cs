using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace HalfMsgBroker.Tests.Storage.CrashPoints;

/// <summary>
/// The journal's randomized crash-point suite (see <see cref="CrashRun"/>). CI runs a bounded number of seeds;
/// <c>tests/fault-seeds.sh N [first-seed]</c> (the variables HALFMSG_FAULT_SEEDS and HALFMSG_FAULT_FIRST_SEED) runs thousands.
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class JournalCrashPointTests(ITestOutputHelper output)
{
    private const int CiSeeds = 60;

    [Fact]
    public async Task Every_acknowledged_change_survives_each_crash_point_and_nothing_unacknowledged_is_half_applied()
    {
        var count = Setting("HALFMSG_FAULT_SEEDS", CiSeeds);
        var first = Setting("HALFMSG_FAULT_FIRST_SEED", 1);
        var failures = new List<string>();
        var kinds = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var started = Stopwatch.GetTimestamp();
        for (var seed = first; seed < first + count; seed++)
        {
            var (failure, kind) = await CrashRun.Run(seed, TimeSpan.FromSeconds(120));
            if (failure is not null) failures.Add(failure);
            kinds[kind] = kinds.GetValueOrDefault(kind) + 1;
        }
        output.WriteLine($"{count} seeds from {first} in {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s, {failures.Count} failed");
        foreach (var (kind, n) in kinds) output.WriteLine($"{n,6}  {kind}");
        Assert.True(failures.Count == 0, $"{failures.Count} of {count} seeds failed:\n" + string.Join("\n", failures));
    }

    /// <summary>
    /// Seeds that found bugs: 7211 and 7921 fail a segment roll's folder fsync (the new, empty file stays behind and every
    /// later roll fails), then die mid-write; the torn write was judged corruption because an empty segment followed it.
    /// </summary>
    [Theory]
    [InlineData(7211)]
    [InlineData(7921)]
    public async Task Seeds_that_found_bugs_pass(int seed)
    {
        var (failure, _) = await CrashRun.Run(seed, TimeSpan.FromSeconds(120));
        Assert.Null(failure);
    }

    private static int Setting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : fallback;
}
