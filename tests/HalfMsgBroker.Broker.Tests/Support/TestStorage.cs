using System.Security.Cryptography;
using System.Text;
using HalfMsgBroker.Tests.Shared;
using Npgsql;

namespace HalfMsgBroker.Tests.Support;

/// <summary>
/// Which storage provider the broker tests run on. LiteDB by default; with
/// <c>HALFMSG_TEST_STORAGE=PostgreSql</c> every <see cref="BrokerFactory"/> and <see cref="BrokerProcess"/>
/// runs on PostgreSQL instead: one private cluster for the whole run (started on first use, stopped
/// by PID when the test process exits), and one database per data path, so a test that restarts the
/// broker on the same <c>Broker:DataPath</c> finds its state again. Tests of the LiteDB engine itself
/// (the journal, its files, the data folder's disk space) carry <c>[Trait("Storage", "LiteDb")]</c>
/// and are left out of that run.
/// </summary>
public static class TestStorage
{
    public const string Variable = "HALFMSG_TEST_STORAGE";

    public static bool IsPostgreSql { get; } =
        string.Equals(Environment.GetEnvironmentVariable(Variable), "PostgreSql", StringComparison.OrdinalIgnoreCase);

    /// <summary>With <c>HALFMSG_TEST_MULTI_ACTIVE=1</c> (and PostgreSQL), brokers run with <c>MultiActive=true</c>.</summary>
    public static bool IsMultiActive { get; } = IsPostgreSql && Environment.GetEnvironmentVariable("HALFMSG_TEST_MULTI_ACTIVE") == "1";

    private static readonly Lazy<PostgresCluster> Cluster = new(StartCluster, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The settings that put a broker with this data path on the provider under test (none for LiteDB).</summary>
    public static IEnumerable<KeyValuePair<string, string?>> SettingsFor(string dataPath)
    {
        if (!IsPostgreSql) return [];
        return
        [
            new("Broker:Storage:Provider", "PostgreSql"),
            new("ConnectionStrings:HalfMsg", ConnectionStringFor(dataPath)),
            new("Broker:Storage:PostgreSql:MultiActive", IsMultiActive ? "true" : "false"),
        ];
    }

    /// <summary>The database of a data path, created on first use; the same path always gives the same database.</summary>
    public static string ConnectionStringFor(string dataPath)
    {
        var name = DatabaseName(dataPath);
        using (var connection = new NpgsqlConnection(Cluster.Value.ConnectionString))
        {
            connection.Open();
            using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            try
            {
                create.ExecuteNonQuery();
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DuplicateDatabase)
            {
                // a restart on the same data path
            }
        }
        return new NpgsqlConnectionStringBuilder(Cluster.Value.ConnectionString) { Database = name, MaxPoolSize = 20 }.ConnectionString;
    }

    /// <summary>Drops a data path's database (the broker using it must be stopped); a no-op on LiteDB.</summary>
    public static void Drop(string dataPath)
    {
        if (!IsPostgreSql || !Cluster.IsValueCreated) return;
        NpgsqlConnection.ClearAllPools();
        using var connection = new NpgsqlConnection(Cluster.Value.ConnectionString);
        connection.Open();
        using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{DatabaseName(dataPath)}\" WITH (FORCE)", connection);
        drop.ExecuteNonQuery();
    }

    /// <summary>Every value the queries return from a data path's database (PostgreSQL only): for asserting what is stored.</summary>
    public static async Task<List<byte[]>> ReadAllAsync(string dataPath, params string[] queries)
    {
        var values = new List<byte[]>();
        await using var connection = new NpgsqlConnection(ConnectionStringFor(dataPath));
        await connection.OpenAsync();
        foreach (var query in queries)
        {
            await using var command = new NpgsqlCommand(query, connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync()) values.Add((byte[])reader[0]);
        }
        return values;
    }

    private static string DatabaseName(string dataPath) =>
        "b_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(dataPath))))[..40];

    private static PostgresCluster StartCluster()
    {
        if (PostgresCluster.Unavailable is { } reason)
        {
            throw new InvalidOperationException($"{Variable}=PostgreSql, but PostgreSQL cannot be started here: {reason}");
        }
        var cluster = new PostgresCluster();
        cluster.InitializeAsync().GetAwaiter().GetResult();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.DisposeAsync().GetAwaiter().GetResult();
        return cluster;
    }
}
