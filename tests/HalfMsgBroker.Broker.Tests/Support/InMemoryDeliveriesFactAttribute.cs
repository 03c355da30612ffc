namespace HalfMsgBroker.Tests.Support;

/// <summary>
/// A test of this process's delivery queues themselves (their rebuild at start, the payloads they cache, leases a
/// restart forgets): skipped in the <c>HALFMSG_TEST_MULTI_ACTIVE=1</c> run, where deliveries are database rows every
/// broker shares and a lease outlives a restart of the broker that handed it out.
/// </summary>
public sealed class InMemoryDeliveriesFactAttribute : FactAttribute
{
    public InMemoryDeliveriesFactAttribute()
    {
        if (TestStorage.IsMultiActive) Skip = "tests the in-memory delivery queues; with MultiActive deliveries are shared rows and leases survive a restart";
    }
}
