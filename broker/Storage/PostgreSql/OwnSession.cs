using Npgsql;

namespace HalfMsgBroker.Storage.PostgreSql;

/// <summary>The connection string of a session a broker keeps to itself for as long as it runs (the lock, the listener).</summary>
internal static class OwnSession
{
    /// <summary>
    /// Unpooled: a pooled connection returned to the pool would keep the session, and what it holds (a lock, a LISTEN),
    /// alive. TCP keepalives notice a peer that vanished while the session sits idle; the application name tells the
    /// sessions apart in <c>pg_stat_activity</c>.
    /// </summary>
    public static string For(string connectionString, string applicationName) => new NpgsqlConnectionStringBuilder(connectionString)
    {
        Pooling = false,
        TcpKeepAlive = true,
        TcpKeepAliveTime = 10,
        TcpKeepAliveInterval = 2,
        ApplicationName = applicationName,
    }.ConnectionString;
}
