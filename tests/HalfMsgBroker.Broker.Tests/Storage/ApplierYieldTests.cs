using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>The applier hands its core back to the request path between pieces of LiteDB work, never mid-quantum.</summary>
[Trait("Storage", "LiteDb")]
public sealed class ApplierYieldTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-applier-yield-tests", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_path);

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

    [Fact]
    public void Applying_a_batch_gives_the_core_away_between_documents_and_stores_them_all()
    {
        const int count = 40;
        using var store = new LiteDbMessageStore(_path, Durability.Process);
        long now = 0;
        // Every document takes a whole quantum here, so each one is followed by a yield.
        store.ApplyYield = new ApplierYield(() => now += 10, () => true, quantumTicks: 10);
        var changes = new ChangeSet { LastSeq = 1 };
        var messages = Enumerable.Range(0, count).Select(i => new StoredMessage
        {
            Id = Guid.CreateVersion7(),
            Topic = "orders",
            Body = "{}"u8.ToArray(),
            TransactionId = $"tx-{i}",
            ProducerGroup = "order-service",
            State = MessageState.Prepared,
            BornAt = 1,
            NextCheckAt = 100,
        }).ToList();
        foreach (var m in messages) changes.PutMessage(m, inserted: true, MessageCodec.TransactionKey(m.TransactionId!));

        store.Apply(changes);

        // Once after building each document and once before storing each one.
        Assert.True(store.ApplyYield.Yields >= 2 * count, $"{store.ApplyYield.Yields} yields for {count} documents");
        Assert.All(messages, m => Assert.Equal(m.TransactionId, store.Find(m.Id)?.TransactionId));
    }
}
