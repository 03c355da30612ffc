using System.Net;
using HalfMsgBroker.Access;
using HalfMsgBroker.Cluster;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Tests.Shared;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;

namespace HalfMsgBroker.Tests.Storage.PostgreSql.MultiActive;

/// <summary>
/// A configuration change made through a broker that has not yet heard of another broker's earlier change starts from
/// what is stored, not from that broker's memory, and the broker's memory then follows what it stored. The second broker
/// is made late to hear by holding its <see cref="SharedStateSync"/>: what it hears stays queued.
/// </summary>
public sealed class MultiActiveLateHearingTests(PostgresCluster cluster) : IClassFixture<PostgresCluster>
{
    [PostgresFact]
    public async Task A_subscription_changed_through_a_broker_that_has_not_heard_of_it_keeps_its_stored_creation_time_and_secret()
    {
        await using var receiver = await TestReceiver.Answering(200);
        await LateHearing.OnTwoBrokers(cluster, "late_sub", async (database, nodes, one, two) =>
        {
            var deaf = LateHearing.SyncOf(nodes[1]);
            await deaf.HoldAsync();

            var created = await one.Put("/v1/consumer-groups/billing/subscriptions/orders", new { push = new { url = receiver.Url }, signing = "auto", maxAttempts = 3 });
            Assert.Equal(HttpStatusCode.Created, created.Status);
            Assert.Null(nodes[1].Services.GetRequiredService<DeliveryRegistry>().Find("billing", "orders")); // the second has not heard

            // No signing field: keep whatever secret the subscription has. The second broker's memory has none.
            var changed = await two.Put("/v1/consumer-groups/billing/subscriptions/orders", new { push = new { url = receiver.Url }, maxAttempts = 5 });
            Assert.Equal(HttpStatusCode.OK, changed.Status);
            Assert.Null(changed.Json["signingSecret"]);
            Assert.Equal(5, changed.Json.Int("maxAttempts"));
            foreach (var field in new[] { "createdAt", "signing", "signingSecretCreatedAt", "signingSecretFingerprint" })
            {
                Assert.Equal(created.Json.Str(field), changed.Json.Str(field));
            }

            var stored = Assert.IsType<Subscription>(LateHearing.StoreOf(nodes[1]).FindSubscription("billing", "orders"));
            Assert.Equal(created.Json.Str("signingSecret"), stored.Signing?.Secret);
            Assert.Equal(DateTime.Parse(created.Json.Str("createdAt"), null, System.Globalization.DateTimeStyles.RoundtripKind), Times.ToUtc(stored.CreatedAt));
            Assert.Equal(5, stored.MaxAttempts);
            // Still deaf: what the second broker holds is what it stored, not what a reload read.
            Assert.Equal(Shape(stored), Shape(nodes[1].Services.GetRequiredService<DeliveryRegistry>().Find("billing", "orders")!.Subscription));
            var seenByTwo = (await two.Get("/v1/consumer-groups/billing")).Json["subscriptions"]![0]!;
            Assert.Equal(created.Json.Str("createdAt"), seenByTwo.Str("createdAt"));
            Assert.Equal(created.Json.Str("signingSecretFingerprint"), seenByTwo.Str("signingSecretFingerprint"));

            // The first hears the second's change and agrees.
            var seenByOne = await Eventually.Until(() => one.Get("/v1/consumer-groups/billing"),
                a => a.Json["subscriptions"]![0]!.Int("maxAttempts") == 5, "the second broker's change on the first");
            Assert.Equal(created.Json.Str("createdAt"), seenByOne.Json["subscriptions"]![0]!.Str("createdAt"));
            Assert.Equal(created.Json.Str("signingSecretFingerprint"), seenByOne.Json["subscriptions"]![0]!.Str("signingSecretFingerprint"));
            Assert.Equal(Shape(stored), Shape(nodes[0].Services.GetRequiredService<DeliveryRegistry>().Find("billing", "orders")!.Subscription));

            deaf.Release();
        });
    }

    [PostgresFact]
    public async Task Pause_rotation_and_deletion_through_a_broker_that_has_not_heard_of_the_subscription_act_on_the_stored_one()
    {
        await using var receiver = await TestReceiver.Answering(200);
        await LateHearing.OnTwoBrokers(cluster, "late_ops", async (database, nodes, one, two) =>
        {
            var deaf = LateHearing.SyncOf(nodes[1]);
            await deaf.HoldAsync();
            var created = new Dictionary<string, Http.Answer>();
            foreach (var topic in new[] { "paused", "rotated", "deleted" })
            {
                created[topic] = await one.Put($"/v1/consumer-groups/billing/subscriptions/{topic}", new { push = new { url = receiver.Url }, signing = "auto" });
                Assert.Equal(HttpStatusCode.Created, created[topic].Status);
            }
            Assert.Empty(nodes[1].Services.GetRequiredService<DeliveryRegistry>().QueuesOf("billing")); // the second has not heard

            var paused = await two.Post("/v1/consumer-groups/billing/subscriptions/paused/pause");
            Assert.Equal(HttpStatusCode.OK, paused.Status);
            Assert.True(paused.Json["paused"]!.GetValue<bool>());
            Assert.Equal(created["paused"].Json.Str("createdAt"), paused.Json.Str("createdAt"));
            Assert.Equal(created["paused"].Json.Str("signingSecretFingerprint"), paused.Json.Str("signingSecretFingerprint"));

            var rotated = await two.Post("/v1/consumer-groups/billing/subscriptions/rotated/signing-secret/rotate");
            Assert.Equal(HttpStatusCode.OK, rotated.Status);
            Assert.NotEqual(created["rotated"].Json.Str("signingSecretFingerprint"), rotated.Json.Str("signingSecretFingerprint"));
            Assert.Equal(created["rotated"].Json.Str("createdAt"), rotated.Json.Str("createdAt"));

            Assert.Equal(HttpStatusCode.NoContent, (await two.Delete("/v1/consumer-groups/billing/subscriptions/deleted")).Status);

            // Still deaf: the second broker holds what it stored, the store has what it changed.
            var store = LateHearing.StoreOf(nodes[1]);
            var registry = nodes[1].Services.GetRequiredService<DeliveryRegistry>();
            Assert.Null(store.FindSubscription("billing", "deleted"));
            Assert.Null(registry.Find("billing", "deleted"));
            var storedPaused = store.FindSubscription("billing", "paused")!;
            Assert.True(storedPaused.Paused);
            Assert.Equal(Shape(storedPaused), Shape(registry.Find("billing", "paused")!.Subscription));
            var storedRotated = store.FindSubscription("billing", "rotated")!;
            Assert.Equal(created["rotated"].Json.Str("signingSecret"), storedRotated.Signing?.Previous);
            Assert.Equal(Shape(storedRotated), Shape(registry.Find("billing", "rotated")!.Subscription));

            // The first hears all three.
            await Eventually.Until(() => one.Get("/v1/consumer-groups/billing"), a =>
                a.Json["subscriptions"]!.AsArray().Count == 2
                && a.Json["subscriptions"]!.AsArray().Any(s => s!.Str("topic") == "paused" && s!["paused"]!.GetValue<bool>())
                && a.Json["subscriptions"]!.AsArray().Any(s => s!.Str("topic") == "rotated" && s.Str("signingSecretFingerprint") == rotated.Json.Str("signingSecretFingerprint")),
                "the second broker's changes on the first");
            deaf.Release();
        });
    }

    [PostgresFact]
    public async Task An_api_key_revoked_through_a_broker_that_has_not_heard_of_it_is_revoked_as_stored()
    {
        await LateHearing.OnTwoBrokers(cluster, "late_key", async (database, nodes, one, two) =>
        {
            var deaf = LateHearing.SyncOf(nodes[1]);

            // Created on the first, revoked through the second before it heard of the key.
            await deaf.HoldAsync();
            var fresh = await one.Post("/v1/api-keys", new { name = "fresh", role = "admin" });
            Assert.Equal(HttpStatusCode.Created, fresh.Status);
            Assert.DoesNotContain(nodes[1].Services.GetRequiredService<ApiKeyRegistry>().List(), k => k.Id == fresh.Json.Str("id")); // the second has not heard
            Assert.Equal(HttpStatusCode.NoContent, (await two.Delete($"/v1/api-keys/{fresh.Json.Str("id")}")).Status);
            using (var freshOnOne = nodes[0].CreateClient(fresh.Json.Str("key")))
            {
                await Eventually.Until(() => freshOnOne.Get("/v1/api-keys"), a => a.Status == HttpStatusCode.Unauthorized, "the key revoked through the second refused by the first");
            }
            deaf.Release();

            // Known to both, revoked on the first, revoked again through the second before it heard: the first revocation stands.
            var known = await one.Post("/v1/api-keys", new { name = "known", role = "admin" });
            var id = known.Json.Str("id");
            using var knownOnTwo = nodes[1].CreateClient(known.Json.Str("key"));
            await Eventually.Until(() => knownOnTwo.Get("/v1/api-keys"), a => a.Status == HttpStatusCode.OK, "the key accepted by the second");
            await deaf.HoldAsync();
            Assert.Equal(HttpStatusCode.NoContent, (await one.Delete($"/v1/api-keys/{id}")).Status);
            var keys = nodes[1].Services.GetRequiredService<IAccessStore>();
            var revokedAt = keys.Keys().Single(k => k.Id == id).RevokedAt;
            Assert.NotNull(revokedAt);
            Assert.Equal(HttpStatusCode.OK, (await knownOnTwo.Get("/v1/api-keys")).Status); // the second has not heard

            Assert.Equal(HttpStatusCode.NotFound, (await two.Delete($"/v1/api-keys/{id}")).Status);
            Assert.Equal(revokedAt, keys.Keys().Single(k => k.Id == id).RevokedAt);
            // Memory follows the store at once: the second refuses the key without waiting for the notification.
            Assert.Equal(HttpStatusCode.Unauthorized, (await knownOnTwo.Get("/v1/api-keys")).Status);
            deaf.Release();
        });
    }

    [PostgresFact]
    public async Task Two_brokers_creating_one_producer_group_at_once_keep_one_secret()
    {
        await using var checker = await TestReceiver.Answering(200);
        await LateHearing.OnTwoBrokers(cluster, "late_group", async (database, nodes, one, two) =>
        {

            // Both PUTs wait on the group's lock, held here, so both begin before either has stored the group.
            await using var holder = new NpgsqlConnection(database);
            await holder.OpenAsync();
            await using (var take = new NpgsqlCommand("SELECT pg_advisory_lock($1, hashtext('payments'))", holder))
            {
                take.Parameters.Add(new NpgsqlParameter<int> { TypedValue = PostgreSqlMessageStore.ProducerGroupLockSpace });
                await take.ExecuteNonQueryAsync();
            }
            var body = new { checkUrl = checker.Url, signing = "auto" };
            var puts = new[] { one.Put("/v1/producer-groups/payments", body), two.Put("/v1/producer-groups/payments", body) };
            await using (var waiting = new NpgsqlCommand(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1::oid AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", holder))
            {
                waiting.Parameters.Add(new NpgsqlParameter<long> { TypedValue = PostgreSqlMessageStore.ProducerGroupLockSpace });
                await Eventually.Until(async () => (long)(await waiting.ExecuteScalarAsync())!, n => n == 2, "both brokers waiting for the producer group's lock");
            }
            await using (var release = new NpgsqlCommand("SELECT pg_advisory_unlock_all()", holder)) await release.ExecuteNonQueryAsync();

            var answers = await Task.WhenAll(puts);
            var first = Assert.Single(answers, a => a.Status == HttpStatusCode.Created);
            var second = Assert.Single(answers, a => a.Status == HttpStatusCode.OK);
            Assert.NotEqual("", first.Json.Str("signingSecret"));
            Assert.Null(second.Json["signingSecret"]);
            Assert.Equal(first.Json.Str("signingSecretFingerprint"), second.Json.Str("signingSecretFingerprint"));
            Assert.Equal(first.Json.Str("signingSecretFingerprint"), (await two.Get("/v1/producer-groups/payments")).Json.Str("signingSecretFingerprint"));
        });
    }

    private static object Shape(Subscription s) => (s.CreatedAt, s.TagFilter.Expression, s.Push, s.MaxAttempts, s.OnExhausted, s.Signing, s.Paused);
}
