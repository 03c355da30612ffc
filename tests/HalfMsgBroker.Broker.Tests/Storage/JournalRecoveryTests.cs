using System.Buffers.Binary;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>
/// Recovery as a storage engine must do it, on a real LiteDB file and journal: a torn tail is dropped
/// and said so; damage with intact frames after it, or frames that do not follow LiteDB's number,
/// refuse the open and change no file; verify reports, salvage applies every intact frame and
/// quarantines the damaged segment.
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class JournalRecoveryTests : IDisposable
{
    private static readonly TimeSpan Never = TimeSpan.FromHours(1);

    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-recovery-tests", Guid.NewGuid().ToString("N"));
    private readonly ListLogger _log = new();

    public void Dispose() => BrokerFactory.TryDelete(_path);

    private string JournalPath => Path.Combine(_path, "journal");

    private JournaledMessageStore Open(bool salvage = false) => new(
        new LiteDbMessageStore(_path, Durability.Process),
        JournalPath,
        new StorageOptions { ApplyDelay = Never },
        e => throw new Xunit.Sdk.XunitException("apply failed: " + e),
        _log,
        salvage: salvage);

    private static StoredMessage Half(string tx, int bodyBytes = 40) => new()
    {
        Id = Guid.CreateVersion7(),
        Topic = "orders",
        Body = System.Text.Encoding.UTF8.GetBytes("{\"p\":\"" + new string('x', bodyBytes) + "\"}"),
        TransactionId = tx,
        ProducerGroup = "order-service",
        State = MessageState.Prepared,
        BornAt = 1,
        NextCheckAt = 100,
    };

    /// <summary>
    /// Writes one frame per message, then "crashes": LiteDB holds none of them, the journal all. Unless
    /// <paramref name="keepZeros"/>, the segment is cut to its frames, as a journal without zeroed space ahead
    /// (<see cref="StorageOptions.Durability"/> Process) leaves it, so a test can cut and flip bytes by the file's length.
    /// </summary>
    private List<StoredMessage> WriteAndCrash(int frames, bool keepZeros = false)
    {
        var messages = Enumerable.Range(0, frames).Select(i => Half("tx-" + i)).ToList();
        var store = Open();
        foreach (var m in messages) store.RunBatch(() => store.Insert(m));
        store.DisposeAsIfCrashed();
        if (!keepZeros)
        {
            var segment = Segment;
            JournalScan.ReadSegment(segment, (_, _, _) => { }, out var used);
            File.WriteAllBytes(segment, File.ReadAllBytes(segment)[..(int)used]);
        }
        return messages;
    }

    private string Segment => Assert.Single(Directory.GetFiles(JournalPath, "journal-*.log"));

    /// <summary>Byte offsets where each frame of the segment starts.</summary>
    private static List<int> FrameStarts(byte[] bytes)
    {
        var starts = new List<int>();
        for (var at = 0; at + Journal.HeaderBytes <= bytes.Length; at += Journal.HeaderBytes + (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at)))
        {
            starts.Add(at);
        }
        return starts;
    }

    private Dictionary<string, byte[]> AllFiles() =>
        Directory.GetFiles(_path, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(-1)] // all but the last byte
    public void A_torn_tail_is_dropped_at_any_cut_point_and_the_log_says_so(int keepOfLastFrame)
    {
        var messages = WriteAndCrash(5);
        var bytes = File.ReadAllBytes(Segment);
        var last = FrameStarts(bytes)[^1];
        var cut = keepOfLastFrame < 0 ? bytes.Length - 1 : last + keepOfLastFrame;
        File.WriteAllBytes(Segment, bytes[..cut]);

        using (var store = Open())
        {
            foreach (var m in messages[..4]) Assert.NotNull(store.Find(m.Id));
            Assert.Null(store.Find(messages[4].Id));
        }
        var line = Assert.Single(_log.Lines, l => l.Message.Contains("torn frame", StringComparison.Ordinal));
        Assert.Equal(LogLevel.Warning, line.Level);
        Assert.Contains($"byte offset {last}: {cut - last} bytes dropped", line.Message, StringComparison.Ordinal);
        Assert.Contains(_log.Lines, l => l.Level == LogLevel.Information && l.Message.Contains("Journal replay: 4 frames (4 changes)", StringComparison.Ordinal));
    }

    [Fact]
    public void A_flipped_byte_with_intact_frames_after_it_refuses_the_open_and_changes_no_file_then_verify_and_salvage_recover_the_rest()
    {
        var messages = WriteAndCrash(20);
        var segment = Segment;
        var bytes = File.ReadAllBytes(segment);
        var starts = FrameStarts(bytes);
        var flipAt = bytes.Length * 2 / 5;
        bytes[flipAt] ^= 0x5A;
        File.WriteAllBytes(segment, bytes);
        var damagedFrame = starts.FindLastIndex(s => s <= flipAt);
        var before = AllFiles();

        var refused = Assert.Throws<JournalCorruptException>(() => Open());
        Assert.Contains(segment, refused.Message, StringComparison.Ordinal);
        Assert.Contains($"byte offset {starts[damagedFrame]}", refused.Message, StringComparison.Ordinal);
        Assert.Contains("journal salvage", refused.Message, StringComparison.Ordinal);
        var after = AllFiles();
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (file, content) in before) Assert.True(content.AsSpan().SequenceEqual(after[file]), file + " changed");

        var report = new StringWriter();
        Assert.Equal(1, JournalCommands.Verify(_path, JournalPath, report));
        Assert.Contains($"{Path.GetFileName(segment)}: {bytes.Length} bytes, 19 frames, 19 changes, sequence 1..20", report.ToString(), StringComparison.Ordinal);
        Assert.Contains($"DAMAGED: bytes {starts[damagedFrame]}..", report.ToString(), StringComparison.Ordinal);

        Assert.Equal(0, JournalCommands.Salvage(_path, JournalPath, new StorageOptions(), _log));
        Assert.True(File.Exists(Path.Combine(JournalPath, "quarantine", Path.GetFileName(segment))));
        Assert.Contains(_log.Lines, l => l.Message.Contains($"skipping bytes {starts[damagedFrame]}..", StringComparison.Ordinal));
        Assert.Contains(_log.Lines, l => l.Message.Contains($"frames {damagedFrame + 1}..{damagedFrame + 1} are missing", StringComparison.Ordinal));

        using var store = Open();
        for (var i = 0; i < messages.Count; i++)
        {
            if (i == damagedFrame) Assert.Null(store.Find(messages[i].Id));
            else Assert.NotNull(store.Find(messages[i].Id));
        }
        Assert.Equal(1, store.QuarantinedCount);
        Assert.Equal(0, JournalCommands.Verify(_path, JournalPath, new StringWriter()));
    }

    [Fact]
    public void Damage_in_a_segment_before_the_last_is_corruption_even_at_its_end()
    {
        var store = new JournaledMessageStore(
            new LiteDbMessageStore(_path, Durability.Process), JournalPath,
            new StorageOptions { ApplyDelay = Never, JournalSegmentBytes = 1 << 20 }, _ => { }, _log);
        var big = Half("tx-big", bodyBytes: (1 << 20) + 10);
        store.RunBatch(() => store.Insert(big));
        store.RunBatch(() => store.Insert(Half("tx-next")));
        store.DisposeAsIfCrashed();
        var segments = Directory.GetFiles(JournalPath, "journal-*.log").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(2, segments.Count);
        var first = File.ReadAllBytes(segments[0]);
        File.WriteAllBytes(segments[0], first[..^3]);

        var refused = Assert.Throws<JournalCorruptException>(() => Open());
        Assert.Contains(segments[0], refused.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(segments[1]));
    }

    [Fact]
    public void The_zeros_written_ahead_of_the_frames_are_free_space_not_damage()
    {
        var messages = WriteAndCrash(5, keepZeros: true);
        var bytes = File.ReadAllBytes(Segment);
        var end = FrameStarts(bytes[..ContentEnd()])[^1];
        Assert.True(bytes.Length - end > Journal.ZeroChunkBytes / 2, $"{bytes.Length} bytes, the last frame at {end}: zeros were written ahead");

        using (var store = Open())
        {
            foreach (var m in messages) Assert.NotNull(store.Find(m.Id));
        }
        Assert.DoesNotContain(_log.Lines, l => l.Level >= LogLevel.Warning);
        Assert.Contains(_log.Lines, l => l.Message.Contains("Journal replay: 5 frames (5 changes)", StringComparison.Ordinal));
    }

    [Fact]
    public void A_frame_cut_short_in_the_zeroed_space_is_a_torn_tail()
    {
        var messages = WriteAndCrash(5, keepZeros: true);
        var bytes = File.ReadAllBytes(Segment);
        var starts = FrameStarts(bytes[..ContentEnd()]);
        // A power cut kept the last frame's first page-sized piece only: the zeros are still there after it.
        Array.Clear(bytes, starts[^1] + Journal.HeaderBytes + 2, ContentEnd() - starts[^1] - Journal.HeaderBytes - 2);
        File.WriteAllBytes(Segment, bytes);

        using (var store = Open())
        {
            foreach (var m in messages[..4]) Assert.NotNull(store.Find(m.Id));
            Assert.Null(store.Find(messages[4].Id));
        }
        var line = Assert.Single(_log.Lines, l => l.Message.Contains("torn frame", StringComparison.Ordinal));
        Assert.Contains($"byte offset {starts[^1]}", line.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Zeros_where_a_frame_was_with_frames_after_them_are_corruption()
    {
        WriteAndCrash(5, keepZeros: true);
        var bytes = File.ReadAllBytes(Segment);
        var starts = FrameStarts(bytes[..ContentEnd()]);
        Array.Clear(bytes, starts[2], starts[3] - starts[2]);
        File.WriteAllBytes(Segment, bytes);

        var refused = Assert.Throws<JournalCorruptException>(() => Open());
        Assert.Contains($"byte offset {starts[2]}", refused.Message, StringComparison.Ordinal);
    }

    // Where the segment's frames end, before the zeros (read from the file as the crash left it).
    private int ContentEnd()
    {
        JournalScan.ReadSegment(Segment, (_, _, _) => { }, out var used);
        return (int)used;
    }

    [Fact]
    public void Frames_that_do_not_follow_LiteDBs_recorded_number_refuse_the_open()
    {
        WriteAndCrash(3);
        var bytes = File.ReadAllBytes(Segment);
        var second = FrameStarts(bytes)[1];
        File.WriteAllBytes(Segment, bytes[second..]); // frame 1 is gone: LiteDB holds 0, the journal starts at 2

        var refused = Assert.Throws<JournalCorruptException>(() => Open());
        Assert.Contains("holds frame 2 at byte offset 0 where frame 1 was expected", refused.Message, StringComparison.Ordinal);
        Assert.Equal(bytes[second..], File.ReadAllBytes(Segment));
        Assert.Equal(1, JournalCommands.Verify(_path, JournalPath, new StringWriter()));
    }

    [Fact]
    public async Task A_journal_that_LiteDB_already_holds_part_of_replays_from_the_next_frame()
    {
        var kept = Half("tx-applied");
        var store = new JournaledMessageStore(
            new LiteDbMessageStore(_path, Durability.Process), JournalPath, new StorageOptions { ApplyDelay = TimeSpan.Zero }, _ => { }, _log);
        store.RunBatch(() => store.Insert(kept));
        await Eventually.Until(() => store.UnappliedCount == 0, "applied");
        var later = Half("tx-later");
        store.RunBatch(() => store.Insert(later));
        store.DisposeAsIfCrashed();

        using var reopened = Open();
        Assert.NotNull(reopened.Find(kept.Id));
        Assert.NotNull(reopened.Find(later.Id));
    }
}
