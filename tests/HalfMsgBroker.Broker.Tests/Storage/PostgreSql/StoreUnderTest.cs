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

    /// <summary>Both providers where PostgreSQL can run here; LiteDB alone elsewhere (PostgresFact skips the PostgreSQL-only tests).</summary>
    public static TheoryData<string> Providers => PostgresCluster.Unavailable is null ? new TheoryData<string>(LiteDb, PostgreSql) : new TheoryData<string>(LiteDb);

    public static async Task<StoreUnderTest> Create(string provider, PostgresCluster cluster)
    {
        var store = new StoreUnderTest(provider);
        if (provider == PostgreSql)
        {
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
