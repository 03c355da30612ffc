namespace HalfMsgBroker.Tests.Support;

/// <summary>One broker shared by a test class; tests isolate themselves by unique topic and group names.</summary>
public sealed class BrokerFixture : IAsyncLifetime
{
    public BrokerFactory Factory { get; } = new();
    public HttpClient Client { get; private set; } = null!;

    public Task InitializeAsync()
    {
        Client = Factory.CreateClient();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Factory.DisposeAsync();
    }
}
