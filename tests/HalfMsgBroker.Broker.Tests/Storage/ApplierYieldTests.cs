using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>
/// The applier hands its core back to the request path once a quantum of work has run, never sooner
/// (that it does so between documents: <c>LiteDbMessageStoreTests.Applying_a_batch_gives_the_core_away_…</c>).
/// </summary>
public sealed class ApplierYieldTests
{
    [Fact]
    public void It_yields_once_a_quantum_of_work_has_run_and_not_before()
    {
        long now = 0;
        var yields = 0;
        var pacing = new ApplierYield(() => now, () => { yields++; return true; }, quantumTicks: 50);

        pacing.Start();
        now = 49;
        pacing.Between();
        Assert.Equal(0, yields);

        now = 50;
        pacing.Between();
        Assert.Equal(1, yields);

        // The quantum counts again from that yield.
        now = 99;
        pacing.Between();
        Assert.Equal(1, yields);
        now = 100;
        pacing.Between();
        Assert.Equal(2, yields);
        Assert.Equal(2, pacing.Yields);
    }

    [Fact]
    public void A_wait_before_a_burst_is_not_counted_as_work()
    {
        long now = 0;
        var yields = 0;
        var pacing = new ApplierYield(() => now, () => { yields++; return true; }, quantumTicks: 50);

        now = 10_000; // the applier slept until its next ApplyDelay
        pacing.Start();
        now = 10_010;
        pacing.Between();

        Assert.Equal(0, yields);
    }
}
