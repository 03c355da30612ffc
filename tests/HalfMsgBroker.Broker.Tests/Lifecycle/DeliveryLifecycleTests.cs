using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Tests.Lifecycle;

public sealed class DeliveryLifecycleTests
{
    private static readonly TimeSpan Retention = TimeSpan.FromSeconds(10);

    private static Subscription Sub(string group, string filter = "*") =>
        new(group, "orders", TagFilter.TryParse(filter, out _)!, null, 3, ExhaustedAction.DeadLetter, 0);

    private static StoredMessage Committed(string? tag = "created") => new()
    {
        Id = Guid.CreateVersion7(), Topic = "orders", Tag = tag, Body = "{}"u8.ToArray(), State = MessageState.Committed,
    };

    [Fact]
    public void Fan_out_gives_each_matching_group_its_own_pending_delivery()
    {
        var m = Committed("paid");
        DeliveryLifecycle.FanOut(m, [Sub("a"), Sub("b", "created || paid"), Sub("c", "created")]);
        Assert.Equal(["a", "b"], m.Deliveries.Select(d => d.Group));
        Assert.All(m.Deliveries, d => Assert.Equal(DeliveryState.Pending, d.State));
    }

    [Fact]
    public void A_message_is_finished_only_when_every_delivery_is_acked_or_discarded()
    {
        var m = Committed();
        DeliveryLifecycle.FanOut(m, [Sub("a"), Sub("b")]);
        DeliveryLifecycle.UpdateFinished(m, 1000, Retention);
        Assert.Equal(0, m.PurgeAt);

        Assert.True(DeliveryLifecycle.Ack(m.Deliveries[0], 1));
        DeliveryLifecycle.UpdateFinished(m, 1000, Retention);
        Assert.Equal(0, m.PurgeAt);

        Assert.True(DeliveryLifecycle.Exhaust(m.Deliveries[1], 3, "boom", ExhaustedAction.Discard, 2000));
        DeliveryLifecycle.UpdateFinished(m, 2000, Retention);
        Assert.Equal(12_000, m.PurgeAt);
    }

    [Fact]
    public void A_dead_letter_keeps_its_message_until_redriven()
    {
        var m = Committed();
        DeliveryLifecycle.FanOut(m, [Sub("a")]);
        var d = m.Deliveries[0];
        Assert.True(DeliveryLifecycle.Exhaust(d, 3, "http 500", ExhaustedAction.DeadLetter, 5));
        DeliveryLifecycle.UpdateFinished(m, 10, Retention);
        Assert.Equal(DeliveryState.DeadLettered, d.State);
        Assert.Equal(0, m.PurgeAt);

        Assert.True(DeliveryLifecycle.Redrive(d));
        Assert.Equal(DeliveryState.Pending, d.State);
        Assert.Equal(0, d.Attempts);
        Assert.False(DeliveryLifecycle.Redrive(d));
    }

    [Fact]
    public void Terminal_deliveries_do_not_move_again()
    {
        var m = Committed();
        DeliveryLifecycle.FanOut(m, [Sub("a")]);
        var d = m.Deliveries[0];
        Assert.True(DeliveryLifecycle.Ack(d, 2));
        Assert.False(DeliveryLifecycle.Ack(d, 3));
        Assert.False(DeliveryLifecycle.Fail(d, 3, "late failure", 100));
        Assert.False(DeliveryLifecycle.Exhaust(d, 3, "late", ExhaustedAction.DeadLetter, 100));
        Assert.Equal(DeliveryState.Acked, d.State);
        Assert.Equal(2, d.Attempts);
    }

    [Fact]
    public void A_failed_attempt_with_a_due_time_is_retrying_and_without_is_pending()
    {
        var m = Committed();
        DeliveryLifecycle.FanOut(m, [Sub("a")]);
        var d = m.Deliveries[0];
        DeliveryLifecycle.Fail(d, 1, "http 503", 500);
        Assert.Equal((DeliveryState.Retrying, 1, "http 503", 500L), (d.State, d.Attempts, d.LastError, d.NextAttemptAt));
        DeliveryLifecycle.Fail(d, 2, "visibility", 0);
        Assert.Equal(DeliveryState.Pending, d.State);
    }

    [Fact]
    public void Rolled_back_messages_are_finished_at_once()
    {
        var m = Committed();
        m.State = MessageState.RolledBack;
        DeliveryLifecycle.UpdateFinished(m, 100, Retention);
        Assert.Equal(10_100, m.PurgeAt);
    }

    [Theory]
    [InlineData("*", null, true)]
    [InlineData("*", "x", true)]
    [InlineData("created || paid", "paid", true)]
    [InlineData("created||paid", "created", true)]
    [InlineData("created || paid", "shipped", false)]
    [InlineData("created", null, false)]
    public void Tag_filters_match_like_rocketmq(string filter, string? tag, bool matches)
    {
        Assert.Equal(matches, TagFilter.TryParse(filter, out _)!.Matches(tag));
    }

    [Theory]
    [InlineData("a b")]
    [InlineData("a || ")]
    [InlineData("a | b")]
    public void Malformed_tag_filters_are_refused(string filter)
    {
        Assert.Null(TagFilter.TryParse(filter, out var error));
        Assert.Contains("tagFilter", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("orders", true)]
    [InlineData("Order_Service-1.v2", true)]
    [InlineData("", false)]
    [InlineData("has space", false)]
    [InlineData("slash/name", false)]
    [InlineData("ünicode", false)]
    public void Names_follow_the_contract(string name, bool valid)
    {
        Assert.Equal(valid, Names.IsValidName(name));
        Assert.False(Names.IsValidName(new string('a', 128)));
        Assert.True(Names.IsValidName(new string('a', 127)));
    }
}
