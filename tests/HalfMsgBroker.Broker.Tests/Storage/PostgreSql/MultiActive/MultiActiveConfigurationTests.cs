using System.Net;
using HalfMsgBroker.Access;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// A configuration change made on one broker is in force on the others: announced on <c>halfmsg_config</c> when it
/// commits, and reloaded by every broker; after a lost LISTEN connection, everything is reloaded.
/// </summary>
public sealed class MultiActiveConfigurationTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task Subscriptions_producer_groups_and_api_keys_changed_on_one_broker_are_in_force_on_the_other()
    {
        var database = await cluster.CreateDatabaseAsync("config");
        var nodes = MultiActiveNodes.Start(database, 2);
        await using var receiver = await TestReceiver.Answering(200);
        try
        {
            using var one = nodes[0].CreateClient();
            using var two = nodes[1].CreateClient();

            // A subscription: created, paused, its secret rotated, deleted.
            Assert.Equal(HttpStatusCode.NotFound, (await two.Get("/v1/consumer-groups/billing")).Status);
            await one.Subscribe("billing", "orders", new { push = new { url = receiver.Url }, signing = "auto" });
            var seen = await Eventually.Until(() => two.Get("/v1/consumer-groups/billing"), a => a.Status == HttpStatusCode.OK, "the subscription on the other broker");
            Assert.Equal(receiver.Url, seen.Json["subscriptions"]![0]!["push"]!.Str("url"));
            Assert.Equal(HttpStatusCode.OK, (await one.Post("/v1/consumer-groups/billing/subscriptions/orders/pause")).Status);
            await Eventually.Until(() => two.Get("/v1/consumer-groups/billing"), a => a.Json["subscriptions"]![0]!["paused"]!.GetValue<bool>(), "the pause on the other broker");
            var fingerprint = seen.Json["subscriptions"]![0]!.Str("signingSecretFingerprint");
            Assert.Equal(HttpStatusCode.OK, (await one.Post("/v1/consumer-groups/billing/subscriptions/orders/signing-secret/rotate")).Status);
            await Eventually.Until(() => two.Get("/v1/consumer-groups/billing"), a => a.Json["subscriptions"]![0]!.Str("signingSecretFingerprint") != fingerprint, "the rotated secret on the other broker");
            Assert.Equal(HttpStatusCode.NoContent, (await one.Delete("/v1/consumer-groups/billing/subscriptions/orders")).Status);
            await Eventually.Until(() => two.Get("/v1/consumer-groups/billing"), a => a.Status == HttpStatusCode.NotFound, "the deletion on the other broker");

            // A producer group: every broker reads it from the database at each use.
            Assert.Equal(HttpStatusCode.Created, (await one.Put("/v1/producer-groups/payments", new { checkUrl = receiver.Url, maxChecksInFlight = 2 })).Status);
            var group = await two.Get("/v1/producer-groups/payments");
            Assert.Equal(receiver.Url, group.Json.Str("checkUrl"));
            Assert.Equal(2, group.Json.Int("maxChecksInFlight"));

            // An API key: created on one broker, accepted by the other; revoked on one, refused by the other.
            var created = await one.Post("/v1/api-keys", new { name = "ops", role = "admin" });
            Assert.Equal(HttpStatusCode.Created, created.Status);
            using var withKey = nodes[1].CreateClient(created.Json.Str("key"));
            await Eventually.Until(() => withKey.Get("/v1/api-keys"), a => a.Status == HttpStatusCode.OK, "the new key accepted by the other broker");
            Assert.Equal(HttpStatusCode.NoContent, (await one.Delete($"/v1/api-keys/{created.Json.Str("id")}")).Status);
            await Eventually.Until(() => withKey.Get("/v1/api-keys"), a => a.Status == HttpStatusCode.Unauthorized, "the revoked key refused by the other broker");
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }

    [PostgresFact]
    public async Task A_change_nobody_announced_is_picked_up_when_the_listen_connection_comes_back()
    {
        var database = await cluster.CreateDatabaseAsync("reload");
        var nodes = MultiActiveNodes.Start(database, 2);
        try
        {
            using var one = nodes[0].CreateClient();
            var created = await one.Post("/v1/api-keys", new { name = "ops", role = "admin" });
            using var withKey = nodes[1].CreateClient(created.Json.Str("key"));
            await Eventually.Until(() => withKey.Get("/v1/api-keys"), a => a.Status == HttpStatusCode.OK, "the new key accepted by the other broker");

            // Revoked behind the brokers' backs: saved without a notification, so no broker hears of it.
            await using (var dataSource = NpgsqlDataSource.Create(database))
            {
                using var silent = new PostgreSqlAccessStore(dataSource);
                var key = Assert.Single(silent.Keys());
                silent.SaveKey(key with { RevokedAt = 1 });
            }
            Assert.Equal(HttpStatusCode.OK, (await withKey.Get("/v1/api-keys")).Status);

            // Notifications sent while a LISTEN connection was down are lost: coming back, each broker reloads everything.
            await using (var admin = new NpgsqlConnection(database))
            {
                await admin.OpenAsync();
                await using var kill = new NpgsqlCommand(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'halfmsg-broker-listen' AND datname = current_database()", admin);
                Assert.Equal(2L, await kill.ExecuteScalarAsync());
            }
            await Eventually.Until(() => withKey.Get("/v1/api-keys"), a => a.Status == HttpStatusCode.Unauthorized, "the reconnected broker to reload the keys");
        }
        finally
        {
            await MultiActiveNodes.DisposeAll(nodes);
        }
    }
}
