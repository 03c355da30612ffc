using System.Net;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Engine;

/// <summary>
/// A batch that collided with another broker's writes (<see cref="StoreConflictException"/>: a deadlock or serialization
/// failure, rolled back whole) is run again: its commands one by one, and each a few times more while it still collides.
/// </summary>
public sealed class StoreConflictRetryTests : IAsyncLifetime
{
    private readonly BrokerFactory _factory = new();
    private HttpClient _client = null!;
    private int _attempts;
    private int _collisions;

    public Task InitializeAsync()
    {
        _client = _factory.CreateClient();
        _factory.Services.GetRequiredService<StoreWriter>().CommandFault = command =>
        {
            if (command is not SendMessage) return;
            Interlocked.Increment(ref _attempts);
            if (Interlocked.Decrement(ref _collisions) >= 0) throw new StoreConflictException("collided (test)", new InvalidOperationException());
        };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _factory.DisposeAsync();
    }

    [Fact]
    public async Task A_send_that_collides_is_run_again_alone_until_it_is_stored()
    {
        Volatile.Write(ref _collisions, StoreWriter.ConflictRetries);
        var id = await _client.Send("orders");
        // The batch, then alone: every collision but the last retried, and the last attempt stored.
        Assert.Equal(StoreWriter.ConflictRetries + 1, Volatile.Read(ref _attempts));
        Assert.Equal(HttpStatusCode.OK, (await _client.Get($"/v1/messages/{id}")).Status);
    }

    [Fact]
    public async Task A_send_that_keeps_colliding_answers_503_storage_unavailable_and_stores_nothing()
    {
        Volatile.Write(ref _collisions, int.MaxValue);
        var answer = await _client.Post("/v1/topics/orders/messages", new { body = new { n = 1 } });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, answer.Status);
        Assert.Equal("storage-unavailable", answer.Code);
        // Once in the batch, once alone, then every retry.
        Assert.Equal(StoreWriter.ConflictRetries + 2, Volatile.Read(ref _attempts));
        Assert.Empty(_factory.Services.GetRequiredService<IStoreMonitoring>().TopicCounts());
    }
}
