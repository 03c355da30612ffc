using HalfMsgBroker.Tests.Shared;

namespace HalfMsgBroker.Tests.Support;

/// <summary>
/// A PostgreSQL test of the one-active-broker mode itself (the database lock, standbys, fencing): skipped in the
/// <c>HALFMSG_TEST_MULTI_ACTIVE=1</c> run, where every broker is active and none takes the lock.
/// </summary>
public sealed class SingleActivePostgresFactAttribute : FactAttribute
{
    public SingleActivePostgresFactAttribute()
    {
        if (PostgresCluster.Unavailable is { } reason) Skip = reason;
        else if (TestStorage.IsMultiActive) Skip = "tests the one active broker per database (lock, standby, fencing); with MultiActive every broker is active";
    }
}
