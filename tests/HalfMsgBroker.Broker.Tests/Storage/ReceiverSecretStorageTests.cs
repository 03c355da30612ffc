using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using LiteDB;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>Producer groups' and subscriptions' signing secrets in their BSON documents.</summary>
[Trait("Storage", "LiteDb")]
public sealed class ReceiverSecretStorageTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "halfmsg-secret-tests", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_path);

    [Fact]
    public void Documents_written_before_signing_secrets_existed_load_without_one()
    {
        // Exactly the fields the broker wrote before this change.
        var group = LiteDbMessageStore.ProducerGroupFrom(new BsonDocument { ["_id"] = "pg", ["u"] = "http://a/check", ["to"] = 3000 });
        var subscription = LiteDbMessageStore.SubscriptionFrom(new BsonDocument
        {
            ["_id"] = "g\nt", ["g"] = "g", ["t"] = "t", ["f"] = "*", ["m"] = 16, ["x"] = 0, ["c"] = 5L, ["pu"] = "http://a/push", ["pt"] = 5000,
        });

        Assert.Equal(new ProducerGroup("pg", "http://a/check", 3000), group);
        Assert.Null(group.Signing);
        Assert.Null(subscription.Signing);
        Assert.Equal("http://a/push", subscription.Push?.Url);
        // And a group without a secret is still written in the old shape.
        Assert.Equal(["_id", "to", "u"], LiteDbMessageStore.ToBson(group).Keys.Order(StringComparer.Ordinal).ToArray());
    }

    [Fact]
    public void Secrets_and_a_rotation_in_progress_survive_the_journal_replay()
    {
        var current = ReceiverSecret.Create(1_000);
        var rotated = current.Rotate(2_000, TimeSpan.FromHours(24));
        var store = new JournaledMessageStore(
            new LiteDbMessageStore(_path, Durability.Process), Path.Combine(_path, "journal"), new StorageOptions { ApplyDelay = TimeSpan.FromHours(1) }, _ => { });
        store.RunBatch(() =>
        {
            store.SaveProducerGroup(new ProducerGroup("pg", "http://a/check", 3000, current));
            store.SaveSubscription(new Subscription("g", "t", TagFilter.All, new PushTarget("http://a/push", 5000), 16, ExhaustedAction.DeadLetter, 7, rotated));
        });
        store.DisposeAsIfCrashed();

        using var reopened = new JournaledMessageStore(
            new LiteDbMessageStore(_path, Durability.Process), Path.Combine(_path, "journal"), new StorageOptions { ApplyDelay = TimeSpan.Zero }, _ => { });
        Assert.Equal(current, reopened.GetProducerGroup("pg")!.Signing);
        var signing = Assert.Single(reopened.Subscriptions()).Signing!;
        Assert.Equal(rotated, signing);
        Assert.Equal(current.Secret, signing.Previous);
        Assert.Equal(2_000 + 86_400_000, signing.PreviousUntil);
        Assert.Equal([rotated.Secret, current.Secret], signing.SigningAt(2_000 + 86_399_999));
        Assert.Equal([rotated.Secret], signing.SigningAt(2_000 + 86_400_000));
    }

    [Fact]
    public void A_secret_never_shows_in_the_records_text()
    {
        var secret = ReceiverSecret.Create(1);
        var group = new ProducerGroup("pg", null, 3000, secret.Rotate(2, TimeSpan.FromHours(1)));
        Assert.DoesNotContain("whsec_", group.ToString(), StringComparison.Ordinal);
        Assert.Contains(group.Signing!.Fingerprint, group.ToString(), StringComparison.Ordinal);
    }
}
