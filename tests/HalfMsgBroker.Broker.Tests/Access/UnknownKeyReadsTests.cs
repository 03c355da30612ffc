using HalfMsgBroker.Access;
using Microsoft.Extensions.Time.Testing;

namespace HalfMsgBroker.Tests.Access;

/// <summary>What unknown API keys may cost a multi-active broker in store reads (<see cref="UnknownKeyReads"/>).</summary>
public sealed class UnknownKeyReadsTests
{
    [Fact]
    public void New_keys_get_a_seconds_worth_of_reads_at_once_then_the_rate()
    {
        var time = new FakeTimeProvider();
        var reads = new UnknownKeyReads(5, time);
        var key = 0;
        Assert.Equal(5, Enumerable.Range(0, 50).Count(_ => reads.MayRead($"k{key++}")));

        time.Advance(TimeSpan.FromMilliseconds(200));
        Assert.Equal(1, Enumerable.Range(0, 50).Count(_ => reads.MayRead($"k{key++}")));

        // However long nobody asked, never more than a second's worth at once.
        time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(5, Enumerable.Range(0, 50).Count(_ => reads.MayRead($"k{key++}")));
        Assert.Equal(11, reads.Reads);
    }

    [Fact]
    public void A_key_read_for_and_not_found_is_refused_without_a_read_for_a_while()
    {
        var time = new FakeTimeProvider();
        var reads = new UnknownKeyReads(100, time);
        Assert.True(reads.MayRead("wrong"));
        reads.Missed("wrong");

        time.Advance(UnknownKeyReads.RememberMiss - TimeSpan.FromSeconds(1));
        Assert.False(reads.MayRead("wrong"));
        Assert.True(reads.MayRead("other")); // the budget is left for other keys

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(reads.MayRead("wrong"));
        Assert.Equal(3, reads.Reads);
    }

    [Fact]
    public void Remembered_misses_are_bounded_and_make_room_once_expired()
    {
        var time = new FakeTimeProvider();
        var reads = new UnknownKeyReads(1, time);
        for (var i = 0; i < UnknownKeyReads.MaxRemembered; i++) reads.Missed($"k{i}");
        reads.Missed("one-too-many");
        Assert.True(reads.MayRead("one-too-many")); // not remembered: full

        time.Advance(UnknownKeyReads.RememberMiss);
        reads.Missed("later");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(reads.MayRead("later")); // the expired ones made room
    }
}
