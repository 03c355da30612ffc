using HalfMsgBroker.Storage.PostgreSql;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>The broker's pool prepares its statements unless the operator's connection string decides otherwise.</summary>
public sealed class PreparedStatementsTests
{
    [Fact]
    public void The_pool_prepares_statements_by_default_and_keeps_what_the_connection_string_says()
    {
        var byDefault = new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPreparedStatements("Host=127.0.0.1;Database=halfmsg"));
        Assert.Equal(32, byDefault.MaxAutoPrepare);
        Assert.Equal("halfmsg", byDefault.Database);

        var off = new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPreparedStatements("Host=127.0.0.1;Max Auto Prepare=0"));
        Assert.Equal(0, off.MaxAutoPrepare);
        var more = new NpgsqlConnectionStringBuilder(PostgreSqlHosting.WithPreparedStatements("Host=127.0.0.1;MaxAutoPrepare=100"));
        Assert.Equal(100, more.MaxAutoPrepare);
    }
}
