using System.Net;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Delivery;

/// <summary>
/// A settlement (nack, failed push attempt, dead-lettering) is stored before it is answered or
/// believed: the store holds it when the 200 arrives, and when the store refuses it memory stays
/// as the store has it.
/// </summary>
public sealed class SettlementTests : IAsyncLifetime
{
    private readonly BrokerFactory _factory = new();
    private HttpClient _c = null!;
    private IMessageStore _store = null!;
    private volatile bool _refuseFailures;
    private volatile bool _refuseAcks;
    private int _refused;
    private volatile TaskCompletionSource? _holdFailures;
    private readonly TaskCompletionSource _failureHeld = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    public Task InitializeAsync()
    {
        _c = _factory.CreateClient();
        _store = _factory.Services.GetRequiredService<IMessageStore>();
        _factory.Services.GetRequiredService<StoreWriter>().CommandFault = command =>
        {
            if (_refuseAcks && command is AckDeliveries) throw new IOException("disk refused the write (test)");
            if (_holdFailures is { } hold && command is RecordAttemptFailure or ExhaustDelivery)
            {
                // The writer's thread, as a slow disk would hold it: the store of this failure is under way.
                _failureHeld.TrySetResult();
                hold.Task.Wait(TimeSpan.FromSeconds(30));
            }
            if (!_refuseFailures || command is not (RecordAttemptFailure or ExhaustDelivery)) return;
            Interlocked.Increment(ref _refused);
            throw new IOException("disk refused the write (test)");
        };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _c.Dispose();
        await _factory.DisposeAsync();
    }

    private StoredDelivery Stored(string id, string group) => _store.Find(Guid.Parse(id))!.DeliveryFor(group)!;

    private Task<Http.Answer> Nack(string group, string handle, int? retryAfterSeconds) =>
        _c.Post($"/v1/consumer-groups/{group}/nack", new { receiptHandle = handle, retryAfterSeconds });

    [Fact]
    public async Task A_nack_is_in_the_store_when_it_is_answered()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic, new { maxAttempts = 2 });
        var id = await _c.Send(topic);

        var first = Assert.Single(await _c.Receive(group, topic))!;
        var retry = await Nack(group, first.Str("receiptHandle"), 0);
        Assert.Equal(HttpStatusCode.OK, retry.Status);
        Assert.Equal("pending", retry.Json.Str("state"));
        var stored = Stored(id, group);
        Assert.Equal((DeliveryState.Pending, 1, "nacked by the consumer"), (stored.State, stored.Attempts, stored.LastError));

        var second = Assert.Single(await _c.Receive(group, topic))!;
        var later = await Nack(group, second.Str("receiptHandle"), null);
        Assert.Equal(HttpStatusCode.OK, later.Status);
        Assert.Equal("deadLettered", later.Json.Str("state"));
        stored = Stored(id, group);
        Assert.Equal((DeliveryState.DeadLettered, 2, 0L), (stored.State, stored.Attempts, stored.NextAttemptAt));
        Assert.Equal(id, Assert.Single((await _c.Get($"/v1/consumer-groups/{group}/dead-letters")).Json["deadLetters"]!.AsArray())!.Str("messageId"));
    }

    [Fact]
    public async Task A_nack_with_a_delay_stores_its_next_attempt_time_before_answering()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic);
        var id = await _c.Send(topic);
        var received = Assert.Single(await _c.Receive(group, topic))!;

        var nack = await Nack(group, received.Str("receiptHandle"), 60);
        Assert.Equal(HttpStatusCode.OK, nack.Status);
        Assert.Equal("retrying", nack.Json.Str("state"));
        var stored = Stored(id, group);
        Assert.Equal((DeliveryState.Retrying, 1), (stored.State, stored.Attempts));
        Assert.Equal(nack.Json["nextAttemptAt"]!.GetValue<DateTime>(), Times.ToUtc(stored.NextAttemptAt));
    }

    [Fact]
    public async Task A_nack_the_store_refuses_answers_503_and_changes_nothing_then_the_same_handle_nacks()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic, new { maxAttempts = 1 });
        var id = await _c.Send(topic);
        var handle = Assert.Single(await _c.Receive(group, topic))!.Str("receiptHandle");

        _refuseFailures = true;
        var refused = await Nack(group, handle, 0);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.Status);
        Assert.Equal("storage-unavailable", refused.Code);
        var view = Assert.Single((await _c.Message(id))["deliveries"]!.AsArray())!;
        Assert.Equal(("inFlight", 1), (view.Str("state"), view.Int("attempts")));
        Assert.NotEqual(DeliveryState.DeadLettered, Stored(id, group).State);
        Assert.Empty((await _c.Get($"/v1/consumer-groups/{group}/dead-letters")).Json["deadLetters"]!.AsArray());

        _refuseFailures = false;
        var nacked = await Nack(group, handle, 0);
        Assert.Equal(HttpStatusCode.OK, nacked.Status);
        Assert.Equal("deadLettered", nacked.Json.Str("state"));
        Assert.Equal(DeliveryState.DeadLettered, Stored(id, group).State);
    }

    [Fact]
    public async Task A_failed_push_attempt_the_store_refuses_is_not_counted_and_is_tried_again()
    {
        await using var receiver = await TestReceiver.Answering(500);
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic, new { push = new { url = receiver.Url }, maxAttempts = 2 });

        _refuseFailures = true;
        var id = await _c.Send(topic);
        await Eventually.Until(() => receiver.Requests.Count >= 2, "the push tried again after its failure could not be stored");
        // The attempt was never stored, so the retry is attempt 1 again, not 2 (which would exhaust maxAttempts).
        Assert.All(receiver.Requests, r => Assert.Equal("1", r.Headers["HalfMsg-Attempt"]));
        Assert.True(Assert.Single((await _c.Message(id))["deliveries"]!.AsArray())!.Int("attempts") <= 1);
        Assert.Equal(0, Stored(id, group).Attempts);

        _refuseFailures = false;
        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "deadLettered", "dead-lettered once failures are stored");
        Assert.Equal((DeliveryState.DeadLettered, 2), (Stored(id, group).State, Stored(id, group).Attempts));
    }

    [Fact]
    public async Task A_visibility_timeout_the_store_refuses_keeps_the_message_until_it_can_be_stored()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic, new { maxAttempts = 1 });
        var id = await _c.Send(topic);
        _refuseFailures = true;
        Assert.Single(await _c.Receive(group, topic, invisible: 1));

        // The time-out's store write is refused, then refused again when the scheduler retries it.
        await Eventually.Until(() => Volatile.Read(ref _refused) >= 2, "the time-out's write refused twice");
        Assert.Equal("inFlight", await _c.DeliveryState(id, group));
        Assert.Equal(0, Stored(id, group).Attempts);
        Assert.Empty((await _c.Get($"/v1/consumer-groups/{group}/dead-letters")).Json["deadLetters"]!.AsArray());

        _refuseFailures = false;
        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "deadLettered", "dead-lettered once the store takes it");
        Assert.Equal(DeliveryState.DeadLettered, Stored(id, group).State);
    }

    [Fact]
    public async Task A_visibility_timeout_being_stored_is_still_in_flight_and_handed_to_nobody_else()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic, new { maxAttempts = 1 });
        var id = await _c.Send(topic);
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _holdFailures = hold;
        try
        {
            Assert.Single(await _c.Receive(group, topic, invisible: 1));
            await _failureHeld.Task.WaitAsync(Eventually.DefaultTimeout);

            // Timed out, not yet stored: in flight still (not "retrying" on its way back), and nobody else receives it.
            Assert.Equal("inFlight", await _c.DeliveryState(id, group));
            Assert.Empty(await _c.Receive(group, topic, wait: 0));
        }
        finally
        {
            _holdFailures = null;
            hold.TrySetResult();
        }
        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "deadLettered", "dead-lettered once the store takes it");
    }

    [Fact]
    public async Task A_push_whose_ack_the_store_refuses_is_pushed_again()
    {
        await using var receiver = await TestReceiver.Answering(200);
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic, new { push = new { url = receiver.Url } });

        _refuseAcks = true;
        var id = await _c.Send(topic);
        await Eventually.Until(() => receiver.Requests.Count >= 2, "pushed again after its ack could not be stored");
        Assert.NotEqual(DeliveryState.Acked, Stored(id, group).State);

        _refuseAcks = false;
        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "acked", "acked once the store takes it");
        Assert.Equal(DeliveryState.Acked, Stored(id, group).State);
    }
}
