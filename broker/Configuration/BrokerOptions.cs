using Microsoft.Extensions.Configuration;

namespace HalfMsgBroker.Configuration;

/// <summary>The <c>Broker</c> configuration section. Durations are TimeSpans ("00:00:06").</summary>
public sealed class BrokerOptions
{
    public const string Section = "Broker";

    /// <summary>Folder of the LiteDB file; relative paths resolve against the content root.</summary>
    public string DataPath { get; set; } = "./data";

    public int MaxMessageBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// Acked, discarded and rolled-back messages are purged this long after they finish. Set as
    /// <c>Broker:Retention</c>'s own value (read in <c>BrokerHosting</c>: the binder cannot take a value
    /// and children for one section), or as <c>Broker:Retention:Messages</c>, which wins, for a JSON
    /// file that also sets <c>Retention:DeadLetters</c> (a JSON value is a string or an object, not both).
    /// </summary>
    [ConfigurationKeyName("Retention:Messages")]
    public TimeSpan Retention { get; set; } = TimeSpan.FromHours(72);

    /// <summary>Dead letters are given up (as an operator's delete would) this long after they were dead-lettered.</summary>
    [ConfigurationKeyName("Retention:DeadLetters")]
    public TimeSpan DeadLetterRetention { get; set; } = TimeSpan.FromDays(14);

    /// <summary>How often retention looks for messages whose time ran out.</summary>
    public TimeSpan RetentionSweepInterval { get; set; } = TimeSpan.FromMinutes(1);

    public TransactionOptions Transactions { get; set; } = new();
    public DeliveryOptions Delivery { get; set; } = new();
    public StorageOptions Storage { get; set; } = new();
    public SigningOptions Signing { get; set; } = new();
    public OutboundOptions Outbound { get; set; } = new();
}

public sealed class TransactionOptions
{
    public TimeSpan CheckAfter { get; set; } = TimeSpan.FromSeconds(6);
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromMinutes(1);
    public int MaxChecks { get; set; } = 15;

    /// <summary>
    /// How long a transaction may stay prepared in all: checks that cannot reach the producer (and
    /// "ask again later" answers) do not spend <see cref="MaxChecks"/>, so this is what ends them.
    /// </summary>
    public TimeSpan MaxPendingTime { get; set; } = TimeSpan.FromHours(24);

    /// <summary>The longest wait a checker's <c>{"state": "unknown", "retryAfterSeconds": N}</c> gets.</summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How many check-back calls may be outstanding at once, across all producer groups.</summary>
    public int MaxChecksInFlight { get; set; } = 64;

    /// <summary>Check-back calls outstanding to one host:port, so one slow producer cannot take every slot.</summary>
    public int MaxChecksInFlightPerHost { get; set; } = 32;

    /// <summary>A producer group's check-back calls outstanding at once, unless its registration sets maxChecksInFlight.</summary>
    public int ProducerGroupMaxChecksInFlight { get; set; } = 4;

    /// <summary>
    /// Check-back calls a producer group starts per second at most, unless its registration sets
    /// maxChecksPerSecond; 0 = no rate limit (maxChecksInFlight still bounds the load).
    /// </summary>
    public int ProducerGroupMaxChecksPerSecond { get; set; }

    /// <summary>Upper bound on how long the check-back loop sleeps when nothing is known to be due.</summary>
    public TimeSpan IdleScanInterval { get; set; } = TimeSpan.FromSeconds(1);
}

public sealed class DeliveryOptions
{
    /// <summary>RocketMQ's delay levels 3..18, the retry ladder of a consumer group.</summary>
    public static readonly TimeSpan[] RocketMqBackoff =
    [
        TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30),
        TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(2), TimeSpan.FromMinutes(3), TimeSpan.FromMinutes(4),
        TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(6), TimeSpan.FromMinutes(7), TimeSpan.FromMinutes(8),
        TimeSpan.FromMinutes(9), TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(20), TimeSpan.FromMinutes(30),
        TimeSpan.FromHours(1), TimeSpan.FromHours(2),
    ];

    /// <summary>Empty means <see cref="RocketMqBackoff"/> (a configured list replaces it, it is not appended).</summary>
    public List<TimeSpan> RetryBackoff { get; set; } = [];

    /// <summary>Push requests in flight per subscription, so one slow endpoint cannot take every slot.</summary>
    public int MaxPushConcurrencyPerSubscription { get; set; } = 16;

    /// <summary>Push requests in flight across all subscriptions.</summary>
    public int MaxPushConcurrency { get; set; } = 256;

    /// <summary>Push requests in flight to one host:port, across the subscriptions that push there.</summary>
    public int MaxPushConcurrencyPerHost { get; set; } = 64;

    /// <summary>
    /// How long a long-poll receive that was woken by a new message waits for more before answering,
    /// trading latency for fewer, fuller receives. Off by default: a woken receive already takes every
    /// message of the group commit that woke it (waiters are woken once per published batch).
    /// </summary>
    public TimeSpan ReceiveLinger { get; set; } = TimeSpan.Zero;

    /// <summary>Memory for caching bodies of messages awaiting delivery; past it they are read from storage.</summary>
    public long MaxCachedPayloadBytes { get; set; } = 256L * 1024 * 1024;

    public TimeSpan BackoffFor(int failedAttempts)
    {
        var ladder = RetryBackoff.Count > 0 ? (IReadOnlyList<TimeSpan>)RetryBackoff : RocketMqBackoff;
        return ladder[Math.Clamp(failedAttempts - 1, 0, ladder.Count - 1)];
    }
}

public enum Durability
{
    /// <summary>A 2xx means the write reached the operating system: it survives a crash of the broker process.</summary>
    Process,

    /// <summary>A 2xx means the write reached the disk (fsync after each group commit): it survives power loss.</summary>
    Fsync,
}

public sealed class StorageOptions
{
    /// <summary>LiteDb (the default: a journal and a LiteDB file in DataPath) or PostgreSql (ConnectionStrings:HalfMsg).</summary>
    public StorageProvider Provider { get; set; } = StorageProvider.LiteDb;

    public PostgreSqlOptions PostgreSql { get; set; } = new();

    public Durability Durability { get; set; } = Durability.Fsync;

    /// <summary>
    /// With <see cref="Durability.Fsync"/>: a stored change reaches consumers (receives, pushes), check-backs and
    /// lookups once its group commit is written to the journal, while its fsync runs; its 2xx still waits for the
    /// fsync. RabbitMQ and RocketMQ hand out messages the same way. A power cut can then take back a change a
    /// consumer already saw: a lost commit comes back through the check-back, so the consumer sees the message
    /// again (at least once); a lost plain send was never answered, so its producer sends it again.
    /// Off (the default): nothing is seen before its fsync returns.
    /// </summary>
    public bool VisibleBeforeFsync { get; set; }

    /// <summary>Most changes one group commit applies in a single LiteDB transaction.</summary>
    public int MaxBatchSize { get; set; } = 512;

    /// <summary>Recently written messages the writer keeps in memory so it need not read them back.</summary>
    public int WriterCacheSize { get; set; } = 65_536;

    /// <summary>
    /// LiteDB copies its write-ahead log into the data file once the log holds this many 8 KiB pages
    /// (1,000 is LiteDB's default). The copy runs on the applier thread: it delays LiteDB catching up
    /// with the journal, not the group commits.
    /// </summary>
    public int CheckpointPages { get; set; } = 1000;

    /// <summary>
    /// A group commit smaller than this lets the request threads run first (up to
    /// <see cref="FillYields"/> times) so more changes join it: LiteDB's cost per commit is mostly
    /// fixed, so fuller batches cost less per message. When no other thread is waiting to run, the
    /// writer does not wait.
    /// </summary>
    public int FillBatchTo { get; set; } = 16;

    public int FillYields { get; set; } = 4;

    /// <summary>
    /// How long journaled changes may wait before LiteDB receives them, coalesced, in one transaction.
    /// Longer: more of a message's writes (half, commit, ack) fold into one insert; shorter: index
    /// queries (lookups by key, dead-letter lists, due checks) wait less for LiteDB to catch up.
    /// </summary>
    public TimeSpan ApplyDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Apply without waiting out <see cref="ApplyDelay"/> once this many documents changed.</summary>
    public int ApplyBatchSize { get; set; } = 8192;

    /// <summary>When LiteDB falls this many changed documents behind, group commits wait for it (bounds memory).</summary>
    public int MaxUnappliedChanges { get; set; } = 200_000;

    /// <summary>
    /// When LiteDB has refused the journaled changes this long, <c>/health/ready</c> fails, so an
    /// orchestrator restarts the broker (which replays the journal into a reopened LiteDB).
    /// </summary>
    public TimeSpan UnreadyAfterApplyFailures { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The journal starts a new file at this size; a file is deleted once LiteDB holds all of it.</summary>
    public long JournalSegmentBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// Below this many free bytes on the data folder's filesystem, sends and half messages answer
    /// <c>507 insufficient-storage</c> while commits, rollbacks, acks and nacks go on (0 turns the
    /// check off). 1 GiB leaves the writes that shrink the backlog room for several journal segments,
    /// LiteDB's log before its checkpoint, and the journal that is kept until LiteDB holds it.
    /// </summary>
    public long MinFreeBytes { get; set; } = 1024L * 1024 * 1024;

    /// <summary>How often the free space is read (one <c>statvfs</c>, never one per request).</summary>
    public TimeSpan FreeSpaceCheckInterval { get; set; } = TimeSpan.FromSeconds(1);
}

public sealed class SigningOptions
{
    /// <summary>One secret, or several separated by commas while a key is being rotated.</summary>
    public string? Secret { get; set; }

    /// <summary>
    /// After a producer group's or subscription's secret is rotated, the previous one keeps signing
    /// alongside the new one this long (or until the next rotation), so its receiver can switch over.
    /// </summary>
    public TimeSpan RotationOverlap { get; set; } = TimeSpan.FromHours(24);

    public IReadOnlyList<string> Secrets =>
        string.IsNullOrWhiteSpace(Secret)
            ? []
            : Secret.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
