using HalfMsgBroker.Outbound;
using Microsoft.Extensions.Time.Testing;

namespace HalfMsgBroker.Tests.Outbound;

/// <summary>The slot rules, deterministic: 16 slots, so the reserve is 2.</summary>
public sealed class FairSlotsTests
{
    private readonly FakeTimeProvider _time = new();

    private FairSlots Slots(int perOwner = 16, int perHost = 16) => new(16, perOwner, perHost, _time);

    private static int TakeAll(FairSlots slots, SlotOwner owner, string? host)
    {
        var taken = 0;
        while (slots.TryAcquire(owner, host)) taken++;
        return taken;
    }

    [Fact]
    public void An_owner_stops_at_its_cap_and_a_host_at_its_own()
    {
        var slots = Slots(perOwner: 4, perHost: 6);
        Assert.Equal(4, TakeAll(slots, new SlotOwner(), "a:80"));
        Assert.Equal(2, TakeAll(slots, new SlotOwner(), "a:80"));
        Assert.Equal(4, TakeAll(slots, new SlotOwner(), "b:80"));
        Assert.Equal(6, slots.Free);
    }

    [Fact]
    public void A_lone_owner_leaves_the_reserve_and_a_newcomer_gets_into_it_at_once()
    {
        var slots = Slots();
        var slow = new SlotOwner();
        Assert.Equal(14, TakeAll(slots, slow, "slow:80"));
        var healthy = new SlotOwner();
        // Two owners share the 2-slot reserve: one each.
        Assert.True(slots.TryAcquire(healthy, "healthy:80"));
        Assert.False(slots.TryAcquire(healthy, "healthy:80"));
        Assert.False(slots.TryAcquire(slow, "slow:80"));
        slots.Release(healthy, "healthy:80");
        Assert.True(slots.TryAcquire(healthy, "healthy:80"));
    }

    [Fact]
    public void Many_slow_owners_that_came_first_still_leave_every_newcomer_a_slot_while_the_reserve_lasts()
    {
        var slots = Slots(perOwner: 4);
        var held = Enumerable.Range(0, 5).Select(i => TakeAll(slots, new SlotOwner(), $"slow{i}:80")).ToList();
        // The first four fill the 14 slots outside the reserve; then each newcomer gets one reserve slot.
        Assert.Equal([4, 4, 4, 2, 1], held);
        Assert.True(slots.TryAcquire(new SlotOwner(), "healthy:80"));
        Assert.Equal(0, slots.Free);
    }

    [Fact]
    public async Task Waiters_below_their_share_go_first_and_idle_slots_are_lent_when_nobody_else_waits()
    {
        var slots = Slots();
        var a = new SlotOwner();
        var b = new SlotOwner();
        Assert.Equal(14, TakeAll(slots, a, null));
        Assert.True(slots.TryAcquire(b, null));
        var aWaits = slots.AcquireAsync(a, null, CancellationToken.None).AsTask();
        var bWaits = slots.AcquireAsync(b, null, CancellationToken.None).AsTask();

        slots.Release(a, null);
        // 2 free is only the reserve, and each already holds its half of it.
        Assert.False(aWaits.IsCompleted || bWaits.IsCompleted);
        slots.Release(a, null);
        // 3 free: b (1) is below its share of the 14 shared slots (7), a (12) is above it while b waits.
        await bWaits.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(aWaits.IsCompleted);

        var bWaitsAgain = slots.AcquireAsync(b, null, CancellationToken.None).AsTask();
        slots.Release(a, null);
        // a queued first, but b is still below its share.
        await bWaitsAgain.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(aWaits.IsCompleted);

        slots.Release(b, null);
        // Nobody else waits: a may borrow past its share again.
        await aWaits.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_cancelled_wait_gives_up_its_place()
    {
        var slots = Slots(perOwner: 1);
        var owner = new SlotOwner();
        Assert.True(slots.TryAcquire(owner, null));
        using var cancel = new CancellationTokenSource();
        var waiting = slots.AcquireAsync(owner, null, cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        slots.Release(owner, null);
        Assert.Equal(16, slots.Free);
        Assert.True(slots.TryAcquire(owner, null));
    }

    [Fact]
    public void An_owner_whose_requests_do_not_end_is_stalled_after_half_a_second()
    {
        var slots = Slots();
        var owner = new SlotOwner();
        Assert.False(slots.IsStalled(owner, "a:80"));
        Assert.True(slots.TryAcquire(owner, "a:80"));
        Assert.True(slots.TryAcquire(owner, "a:80"));
        _time.Advance(TimeSpan.FromMilliseconds(400));
        Assert.False(slots.IsStalled(owner, "a:80"));
        Assert.Equal(TimeSpan.FromMilliseconds(100), slots.UntilStalled(owner, "a:80"));
        _time.Advance(TimeSpan.FromMilliseconds(100));
        Assert.True(slots.IsStalled(owner, "a:80"));
        slots.Release(owner, "a:80");
        Assert.False(slots.IsStalled(owner, "a:80"));
        // Another owner on the stalled host is stalled with it.
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(slots.IsStalled(new SlotOwner(), "a:80"));
        Assert.False(slots.IsStalled(new SlotOwner(), "b:80"));
    }
}
