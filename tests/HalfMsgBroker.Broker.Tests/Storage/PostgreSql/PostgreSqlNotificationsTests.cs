using System.Collections.Concurrent;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql;

/// <summary>The LISTEN connection many active brokers hear each other through: commit-only delivery, and a reload signal after a lost connection.</summary>
public sealed class PostgreSqlNotificationsTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    private static async Task SendAsync(string database, string channel, string payload, bool commit)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using var batch = new NpgsqlBatch(connection, transaction) { BatchCommands = { PostgreSqlNotifications.NotifyCommand(channel, payload) } };
        await batch.ExecuteNonQueryAsync();
        if (commit) await transaction.CommitAsync();
        else await transaction.RollbackAsync();
    }

    [PostgresFact]
    public async Task A_notification_reaches_every_handler_of_its_channel_only_when_its_transaction_commits()
    {
        var database = await cluster.CreateDatabaseAsync("notify");
        using var notifications = new PostgreSqlNotifications(database, NullLogger<PostgreSqlNotifications>.Instance, TimeSpan.FromMilliseconds(200));
        var first = new ConcurrentQueue<string>();
        var second = new ConcurrentQueue<string>();
        var other = new ConcurrentQueue<string>();
        var listening = Task.WhenAll(
            notifications.ListenAsync("halfmsg_ready", first.Enqueue),
            notifications.ListenAsync("halfmsg_ready", second.Enqueue),
            notifications.ListenAsync("halfmsg_config", other.Enqueue));
        await notifications.StartAsync(CancellationToken.None);
        await listening.WaitAsync(TimeSpan.FromSeconds(15));

        await SendAsync(database, "halfmsg_ready", "rolled back", commit: false);
        await SendAsync(database, "halfmsg_ready", "g\norders", commit: true);

        await Eventually.Until(() => first.Count == 1 && second.Count == 1, "both handlers of the channel to hear the committed notification");
        Assert.Equal(["g\norders"], first);
        Assert.Equal(["g\norders"], second);
        Assert.Empty(other);
        await notifications.StopAsync(CancellationToken.None);
    }

    [PostgresFact]
    public async Task A_channel_asked_for_after_start_is_listened_on_and_a_lost_connection_comes_back_and_says_so()
    {
        var database = await cluster.CreateDatabaseAsync("notify");
        using var notifications = new PostgreSqlNotifications(database, NullLogger<PostgreSqlNotifications>.Instance, TimeSpan.FromMilliseconds(200));
        var reconnects = 0;
        notifications.Reconnected += () => Interlocked.Increment(ref reconnects);
        await notifications.StartAsync(CancellationToken.None);
        var heard = new ConcurrentQueue<string>();
        await notifications.ListenAsync("late", heard.Enqueue).WaitAsync(TimeSpan.FromSeconds(15));
        Assert.True(notifications.Connected);

        await using (var admin = new NpgsqlConnection(database))
        {
            await admin.OpenAsync();
            await using var kill = new NpgsqlCommand("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'halfmsg-broker-listen' AND datname = current_database()", admin);
            Assert.Equal(1L, await kill.ExecuteScalarAsync());
        }
        await Eventually.Until(() => Volatile.Read(ref reconnects) == 1, "the listener to reconnect and raise Reconnected");

        await SendAsync(database, "late", "after the reconnect", commit: true);
        await Eventually.Until(() => heard.Count == 1, "the channel to be listened on again after the reconnect");
        Assert.Equal(["after the reconnect"], heard);
        await notifications.StopAsync(CancellationToken.None);
    }
}
