using HalfMsgBroker.Engine;

namespace HalfMsgBroker.Tests.Engine;

public sealed class MessageIdsTests
{
    [Fact]
    public void Ids_made_in_one_millisecond_sort_in_the_order_they_were_made()
    {
        var ids = new MessageIds();
        var made = Enumerable.Range(0, 10_000).Select(_ => ids.Next(1_764_000_000_000)).ToList();
        Assert.Equal(made, made.Order());
        Assert.Equal(made.Count, made.Distinct().Count());
        Assert.All(made, id => Assert.Equal(7, id.Version));
        Assert.All(made, id => Assert.Equal(0x8, id.Variant & 0xC)); // RFC 9562 variant bits 10xx
    }

    [Fact]
    public void A_clock_that_steps_back_does_not_make_ids_go_back()
    {
        var ids = new MessageIds();
        var first = ids.Next(1_764_000_000_500);
        var second = ids.Next(1_764_000_000_100);
        var third = ids.Next(1_764_000_000_900);
        Assert.True(first.CompareTo(second) < 0 && second.CompareTo(third) < 0);
    }
}
