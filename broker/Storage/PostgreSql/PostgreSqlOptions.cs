namespace HalfMsgBroker.Configuration;

/// <summary>Where the broker keeps its state (<c>Broker:Storage:Provider</c>).</summary>
public enum StorageProvider
{
    /// <summary>The journal in front of an embedded LiteDB file in <c>Broker:DataPath</c> (the default).</summary>
    LiteDb,

    /// <summary>A PostgreSQL database (<c>ConnectionStrings:HalfMsg</c>); one active broker per database.</summary>
    PostgreSql,
}

/// <summary><c>Broker:Storage:PostgreSql</c>: what only the PostgreSQL provider reads.</summary>
public sealed class PostgreSqlOptions
{
    /// <summary>The name of the connection string (<c>ConnectionStrings:HalfMsg</c>).</summary>
    public const string ConnectionStringName = "HalfMsg";

    /// <summary>
    /// How often the active broker checks the connection that holds the database lock. A broker whose
    /// lock connection is gone stops (a standby may already have taken over), so this bounds how long
    /// two brokers could both believe they are active.
    /// </summary>
    public TimeSpan LockCheckInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// False (the default): one active broker per database, the others standbys (<see cref="LockCheckInterval"/>).
    /// True: every broker on the database is active and answers any request; they share deliveries, check-back
    /// and sweeps through the database and hear each other through <c>LISTEN/NOTIFY</c>.
    /// </summary>
    public bool MultiActive { get; set; }

    /// <summary>
    /// With <see cref="MultiActive"/>: how long a broker holds a periodic sweep (retention, audit purge) for the cluster
    /// once it took it (<c>halfmsg_leases</c>), renewed at each of its sweeps. Longer than the sweeps' intervals
    /// (<c>Broker:RetentionSweepInterval</c>), or the sweep wanders between brokers; it is also how long a broker that
    /// died keeps the others from sweeping.
    /// </summary>
    public TimeSpan SweepLease { get; set; } = TimeSpan.FromMinutes(3);

    /// <summary>
    /// With <see cref="MultiActive"/>: how often each broker looks for deliveries that became ready without a notification
    /// reaching it (one lost while its LISTEN connection was down, another broker's lease that ran out). Wake-ups come from
    /// <c>LISTEN/NOTIFY</c> and a timer at the earliest due row; this is only the backstop.
    /// </summary>
    public TimeSpan DeliverySafetyPoll { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// With <see cref="MultiActive"/>: how often a broker measures how far its clock is from PostgreSQL's (see
    /// <see cref="MaxClockOffset"/>).
    /// </summary>
    public TimeSpan ClockCheckInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// With <see cref="MultiActive"/>: how far a broker's clock may be from PostgreSQL's before <c>/health/ready</c> reads
    /// Degraded and the log warns. Brokers stamp leases and due times with their own clocks and compare each other's
    /// stamps with them, so clocks that disagree by this much hand a delivery out again up to this long before its lease
    /// runs out. 500 ms, CockroachDB's default for the same reason; NTP keeps hosts on one network within milliseconds.
    /// </summary>
    public TimeSpan MaxClockOffset { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long <c>/health/ready</c> waits for PostgreSQL to answer before it reports the broker not ready.</summary>
    public TimeSpan ReadyTimeout { get; set; } = TimeSpan.FromSeconds(2);
}
