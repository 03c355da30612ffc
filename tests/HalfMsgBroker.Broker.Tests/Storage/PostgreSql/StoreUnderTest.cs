using System.Buffers;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>
/// One provider's store for the compliance tests: LiteDB behind its journal in a temp folder, or
/// PostgreSQL in a fresh database of the shared private cluster. <see cref="Open"/> can be called again
/// after disposing the store, to find what it kept.
/// </summary>
public sealed class StoreUnderTest : IAsyncDisposable
{
    public const string LiteDb = "LiteDb";
    public const string PostgreSql = "PostgreSql";

    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-compliance", Guid.NewGuid().ToString("N"));
    private readonly List<Exception> _applyErrors = [];
    private NpgsqlDataSource? _dataSource;

    private StoreUnderTest(string provider) => Provider = provider;

    public string Provider { get; }

    /// <summary>
    /// Always both providers: where PostgreSQL cannot run, its cases are reported as skipped (<see cref="RequirePostgreSql"/>),
    /// never left out, so a run with no PostgreSQL coverage says so.
    /// </summary>
    public static TheoryData<string> Providers => new(LiteDb, PostgreSql);

    /// <summary>
    /// Skips the calling <c>[SkippableTheory]</c> case when PostgreSQL cannot run here, and fails it instead in a run that
    /// asked for PostgreSQL (<c>HALFMSG_TEST_STORAGE=PostgreSql</c>): that run must not pass without it.
    /// </summary>
    public static void RequirePostgreSql()
    {
        if (PostgresCluster.Unavailable is not { } reason) return;
        if (TestStorage.IsPostgreSql) Assert.Fail($"{TestStorage.Variable}=PostgreSql, but PostgreSQL cannot start here: {reason}");
        Skip.If(true, reason);
    }

    public static async Task<StoreUnderTest> Create(string provider, PostgresCluster cluster)
    {
        var store = new StoreUnderTest(provider);
        if (provider == PostgreSql)
        {
            RequirePostgreSql();
            store._dataSource = NpgsqlDataSource.Create(await cluster.CreateDatabaseAsync("store"));
            PostgreSqlSchema.Migrate(store._dataSource);
        }
        return store;
    }

    public IMessageStore Open() => _dataSource is { } dataSource
        ? new PostgreSqlMessageStore(dataSource)
        : new JournaledMessageStore(
            new LiteDbMessageStore(_path, Durability.Process),
            Path.Combine(_path, "journal"),
            new StorageOptions { ApplyDelay = TimeSpan.FromMilliseconds(10) },
            e => { lock (_applyErrors) _applyErrors.Add(e); });

    public async ValueTask DisposeAsync()
    {
        if (_dataSource is not null) await _dataSource.DisposeAsync();
        BrokerFactory.TryDelete(_path);
        Assert.Empty(_applyErrors);
    }

    /// <summary>A message's every field, as the journal encodes it: two messages are equal when these are.</summary>
    internal static byte[] Encoded(StoredMessage m)
    {
        var buffer = new ArrayBufferWriter<byte>();
        MessageBinary.Write(buffer, m);
        return buffer.WrittenSpan.ToArray();
    }
}
