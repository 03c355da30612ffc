using Npgsql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>
/// The broker's tables, made and migrated at start: an ordered list of scripts, each applied once and
/// recorded in <c>halfmsg_schema_version</c>, all under a transaction-scoped advisory lock so brokers
/// starting at once on an empty database take turns (the second finds the scripts applied). A script
/// and its version row commit together, so a crash mid-migration leaves the previous version whole.
/// </summary>
internal static class PostgreSqlSchema
{
    /// <summary>The advisory lock key of migrations ("halfmsg" + 1); the active broker's lock is another key.</summary>
    public const long MigrationLockKey = 0x68616c666d736701;

    /// <summary>
    /// Version 1. Messages are stored whole in <c>data</c> (the journal's compact encoding, <see cref="MessageBinary"/>);
    /// the other columns exist only to be indexed, each mirroring one of LiteDB's keys: <c>unique_key</c> the
    /// <c>u</c> index (<see cref="MessageCodec.ProducerChosenKeyOf"/>), <c>check_at</c>/<c>open</c>/<c>purge_at</c>
    /// the due-time queue <c>q</c> (at most one is set, as <see cref="MessageCodec.QueueKeyOf"/> files it),
    /// <c>committed_at</c> the replay index <c>r</c>, and <c>halfmsg_message_keys</c> the key index <c>lk</c>.
    /// Text that is compared or ordered uses the "C" collation: byte for byte, as LiteDB's Ordinal.
    /// </summary>
    private const string V1 = """
        CREATE TABLE halfmsg_messages (
            id uuid PRIMARY KEY,
            topic text COLLATE "C" NOT NULL,
            state smallint NOT NULL,
            transaction_id text COLLATE "C",
            producer_group text COLLATE "C",
            unique_key text COLLATE "C",
            check_at bigint,
            open boolean NOT NULL,
            purge_at bigint,
            committed_at bigint,
            data bytea NOT NULL);
        CREATE UNIQUE INDEX halfmsg_messages_unique ON halfmsg_messages (unique_key) WHERE unique_key IS NOT NULL;
        CREATE INDEX halfmsg_messages_check ON halfmsg_messages (check_at, id) WHERE check_at IS NOT NULL;
        CREATE INDEX halfmsg_messages_purge ON halfmsg_messages (purge_at, id) WHERE purge_at IS NOT NULL;
        CREATE INDEX halfmsg_messages_open ON halfmsg_messages (id) WHERE open;
        CREATE INDEX halfmsg_messages_replay ON halfmsg_messages (topic, committed_at, id) WHERE committed_at IS NOT NULL;
        CREATE INDEX halfmsg_messages_transactions ON halfmsg_messages (id) WHERE transaction_id IS NOT NULL;

        CREATE TABLE halfmsg_message_keys (
            key text COLLATE "C" NOT NULL,
            message_id uuid NOT NULL,
            PRIMARY KEY (key, message_id));

        CREATE TABLE halfmsg_dead_letters (
            consumer_group text COLLATE "C" NOT NULL,
            topic text COLLATE "C" NOT NULL,
            message_id uuid NOT NULL,
            dead_lettered_at bigint NOT NULL,
            PRIMARY KEY (consumer_group, topic, message_id));
        CREATE INDEX halfmsg_dead_letters_group ON halfmsg_dead_letters (consumer_group, message_id);
        CREATE INDEX halfmsg_dead_letters_expiry ON halfmsg_dead_letters (dead_lettered_at);

        CREATE TABLE halfmsg_subscriptions (id text COLLATE "C" PRIMARY KEY, doc bytea NOT NULL);
        CREATE TABLE halfmsg_producer_groups (name text COLLATE "C" PRIMARY KEY, doc bytea NOT NULL);
        CREATE TABLE halfmsg_topic_counts (topic text COLLATE "C" PRIMARY KEY, n bigint NOT NULL);
        CREATE TABLE halfmsg_meta (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);

        CREATE TABLE halfmsg_api_keys (id text COLLATE "C" PRIMARY KEY, doc bytea NOT NULL, last_used_at bigint);
        CREATE TABLE halfmsg_audit (
            id bigserial PRIMARY KEY,
            at bigint NOT NULL,
            actor text NOT NULL,
            action text NOT NULL,
            target text COLLATE "C" NOT NULL,
            detail text);
        CREATE INDEX halfmsg_audit_target ON halfmsg_audit (target, id);
        CREATE INDEX halfmsg_audit_at ON halfmsg_audit (at);
        """;

    /// <summary>
    /// Version 2. <c>halfmsg_generation</c> is the fencing token: each broker that takes the database lock adds 1
    /// (<see cref="ActiveBrokerLock.TakeGeneration"/>), and every write transaction first checks, under a share lock
    /// on this row, that the value is still its own (<see cref="ActiveBrokerLock.FenceSql"/>). The index serves the
    /// prepared-transactions listing (<c>check_at IS NOT NULL</c> in id order).
    /// </summary>
    private const string V2 = """
        CREATE TABLE halfmsg_generation (id smallint PRIMARY KEY CHECK (id = 1), value bigint NOT NULL);
        INSERT INTO halfmsg_generation (id, value) VALUES (1, 0);
        CREATE INDEX halfmsg_messages_prepared ON halfmsg_messages (id) WHERE check_at IS NOT NULL;
        """;

    /// <summary>
    /// Version 3. <c>halfmsg_deliveries</c>: with <c>MultiActive</c>, one row per live delivery, written with its message
    /// (<see cref="DeliveryRowWrites"/>) and claimed by every broker (<see cref="DeliveryRows"/>). <c>visible_at</c> is the
    /// due time and the lease's end at once; <c>nonce</c> is the lease's (0: not leased; -1: a time-out being stored); <c>stored_key</c> is what the
    /// message row last stored of the delivery. Indexes: the claim (per subscription, in due order), the earliest due
    /// row (the wake-up timer), leases by their end (time-outs) and each ordering key's lane in commit order.
    /// </summary>
    private const string V3 = """
        CREATE TABLE halfmsg_deliveries (
            message_id uuid NOT NULL,
            consumer_group text COLLATE "C" NOT NULL,
            topic text COLLATE "C" NOT NULL,
            visible_at bigint NOT NULL,
            nonce bigint NOT NULL,
            attempts integer NOT NULL,
            ordering_key text COLLATE "C",
            commit_seq bigint NOT NULL,
            stored_key bigint NOT NULL,
            PRIMARY KEY (message_id, consumer_group));
        CREATE INDEX halfmsg_deliveries_due ON halfmsg_deliveries (consumer_group, topic, visible_at, message_id);
        CREATE INDEX halfmsg_deliveries_next ON halfmsg_deliveries (visible_at);
        CREATE INDEX halfmsg_deliveries_leases ON halfmsg_deliveries (visible_at) WHERE nonce <> 0;
        CREATE INDEX halfmsg_deliveries_lane ON halfmsg_deliveries (consumer_group, topic, ordering_key, commit_seq) WHERE ordering_key IS NOT NULL;
        """;

    /// <summary>
    /// Version 4 (many active brokers). <c>halfmsg_leases</c>: which broker runs a periodic sweep for the whole cluster,
    /// and until when (the database's clock, so brokers' clocks need not agree); see <c>PostgreSqlSweepLease</c>.
    /// </summary>
    private const string V4 = """
        CREATE TABLE halfmsg_leases (name text COLLATE "C" PRIMARY KEY, holder text NOT NULL, until timestamptz NOT NULL);
        """;

    /// <summary>Every migration in order; version N is <c>Migrations[N - 1]</c>. Append only: a shipped script never changes.</summary>
    internal static readonly IReadOnlyList<string> Migrations = [V1, V2, V3, V4];

    /// <summary>Brings the database to the newest version; returns how many scripts it applied (0 when it was current).</summary>
    public static int Migrate(NpgsqlDataSource dataSource) => Migrate(dataSource, Migrations);

    internal static int Migrate(NpgsqlDataSource dataSource, IReadOnlyList<string> migrations)
    {
        using var connection = dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        Execute(connection, transaction, $"SELECT pg_advisory_xact_lock({MigrationLockKey})");
        // Made under the lock: two concurrent CREATE TABLE IF NOT EXISTS can both try to create it and one fails.
        Execute(connection, transaction, "CREATE TABLE IF NOT EXISTS halfmsg_schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
        using var read = new NpgsqlCommand("SELECT coalesce(max(version), 0) FROM halfmsg_schema_version", connection, transaction);
        var current = Convert.ToInt32(read.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        if (current > migrations.Count)
        {
            throw new InvalidOperationException(
                $"The database's schema is version {current}, newer than this broker knows ({migrations.Count}): a newer broker has used it. Run that version.");
        }
        for (var version = current + 1; version <= migrations.Count; version++)
        {
            Execute(connection, transaction, migrations[version - 1]);
            Execute(connection, transaction, $"INSERT INTO halfmsg_schema_version (version) VALUES ({version})");
        }
        transaction.Commit();
        return migrations.Count - current;
    }

    /// <summary>The version the database holds (0 before the first migration).</summary>
    public static int CurrentVersion(NpgsqlDataSource dataSource)
    {
        using var connection = dataSource.OpenConnection();
        using var exists = new NpgsqlCommand("SELECT to_regclass('halfmsg_schema_version') IS NOT NULL", connection);
        if (exists.ExecuteScalar() is not true) return 0;
        using var command = new NpgsqlCommand("SELECT coalesce(max(version), 0) FROM halfmsg_schema_version", connection);
        return Convert.ToInt32(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void Execute(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql)
    {
        using var command = new NpgsqlCommand(sql, connection, transaction);
        command.ExecuteNonQuery();
    }
}
