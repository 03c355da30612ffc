using System.Net;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Crash;

/// <summary>
/// The issue-13 scenario end to end, on the real broker process: acknowledged sends, kill -9, one byte
/// flipped at 40 % of the journal segment. The broker refuses to start and changes no file; `journal
/// verify` reports the damage; `journal salvage` quarantines the segment; the broker then serves every
/// message whose frame is intact.
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class JournalCorruptionTests : IDisposable
{
    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-corruption", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_dataPath);

    private Dictionary<string, byte[]> AllFiles() =>
        Directory.GetFiles(_dataPath, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

    [Fact]
    public async Task A_flipped_byte_refuses_the_start_then_verify_reports_it_and_salvage_lets_the_broker_serve_every_intact_frame()
    {
        // LiteDB takes nothing within the test: every send lives in the journal alone.
        string[] settings = ["--Broker:Storage:ApplyDelay=00:00:10", "--Broker:Storage:ApplyBatchSize=100000"];
        var sent = new List<string>();
        await using (var broker = await BrokerProcess.Start(_dataPath, settings))
        {
            for (var i = 0; i < 300; i++) sent.Add(await broker.Client.Send("orders", new { i }));
            broker.Kill();
        }

        var segment = Assert.Single(Directory.GetFiles(Path.Combine(_dataPath, "journal"), "journal-*.log"));
        var bytes = File.ReadAllBytes(segment);
        // At 40 % of the frames, not of the zeroed space the journal keeps ahead of them.
        JournalScan.ReadSegment(segment, (_, _, _) => { }, out var used);
        var flipAt = (int)used * 2 / 5;
        bytes[flipAt] ^= 0x01;
        File.WriteAllBytes(segment, bytes);
        var intact = IntactMessageIds(segment);
        Assert.InRange(intact.Count, 1, sent.Count - 1);
        var before = AllFiles();

        var start = await BrokerProcess.RunToExit(_dataPath, settings);
        Assert.Equal(2, start.ExitCode);
        var refusal = Assert.Single(start.Output.Split('\n'), l => l.Contains("The journal is corrupt", StringComparison.Ordinal));
        Assert.Contains(segment, refusal, StringComparison.Ordinal);
        Assert.Contains("byte offset", refusal, StringComparison.Ordinal);
        var after = AllFiles();
        Assert.Equal(string.Join(", ", before.Keys.Order()), string.Join(", ", after.Keys.Order()));
        foreach (var (file, content) in before) Assert.True(content.AsSpan().SequenceEqual(after[file]), file + " changed");

        var verify = await BrokerProcess.RunToExit(_dataPath, "journal", "verify");
        Assert.True(verify.ExitCode == 1, verify.Output);
        Assert.Contains("DAMAGED", verify.Output, StringComparison.Ordinal);

        var salvage = await BrokerProcess.RunToExit(_dataPath, "journal", "salvage");
        Assert.True(salvage.ExitCode == 0, salvage.Output);
        Assert.True(File.Exists(Path.Combine(_dataPath, "journal", "quarantine", Path.GetFileName(segment))));

        await using var restarted = await BrokerProcess.Start(_dataPath, settings);
        foreach (var id in sent.Where(s => intact.Contains(Guid.Parse(s))))
        {
            Assert.Equal(HttpStatusCode.OK, (await restarted.Client.Get($"/v1/messages/{id}")).Status);
        }
        var ready = await restarted.Client.GetStringAsync(new Uri("/health/ready", UriKind.Relative));
        Assert.StartsWith("Degraded: 1 item(s) in journal/quarantine/", ready, StringComparison.Ordinal);
    }

    private static HashSet<Guid> IntactMessageIds(string segment)
    {
        var changes = new ChangeSet();
        JournalScan.ReadSegment(segment, (_, _, payload) => JournalRecords.Read(payload, changes));
        return [.. changes.Messages.Keys];
    }
}
