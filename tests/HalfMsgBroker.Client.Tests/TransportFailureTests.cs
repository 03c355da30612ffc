using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Client.Tests;

/// <summary>Calls that get no usable answer: what the SDK throws, and that it carries no API key.</summary>
public sealed class TransportFailureTests
{
    private const string Key = "hmb-test-key-0d9a6c3e51b84f27a1c5e8b2";

    private static ServiceProvider Client(Uri broker)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = broker;
            o.ApiKey = Key;
            o.MaxRetryAttempts = 0;
        });
        return services.BuildServiceProvider();
    }

    [Fact]
    public async Task No_answer_is_a_transient_HalfMsgException_that_holds_no_request()
    {
        int port;
        using (var closed = new TcpListener(IPAddress.Loopback, 0))
        {
            closed.Start();
            port = ((IPEndPoint)closed.LocalEndpoint).Port;
        }

        await using var provider = Client(new Uri($"http://127.0.0.1:{port}"));

        var ex = await Assert.ThrowsAsync<HalfMsgException>(() => provider.GetRequiredService<HalfMsgClient>().CommitAsync("t-1"));

        Assert.Equal((0, "transport"), (ex.Status, ex.Code));
        Assert.True(ex.IsTransient);
        Assert.IsType<HttpRequestException>(ex.InnerException);
        Assert.True(HalfMsgClient.IsTransient(ex)); // ReceiveAllAsync keeps polling through a broker restart
    }

    [Fact]
    public async Task An_unreadable_answer_throws_Refits_exception_with_the_key_scrubbed_from_its_request()
    {
        await using var listener = await RecordingListener.StartAsync(context =>
        {
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync("{ not json");
        });
        await using var provider = Client(listener.BaseAddress);

        var ex = await Assert.ThrowsAnyAsync<Refit.ApiExceptionBase>(() => provider.GetRequiredService<HalfMsgClient>().Api.GetTopicsAsync());

        Assert.Equal("Bearer " + Key, Assert.Single(listener.Requests).Header("Authorization"));
        Assert.Null(ex.RequestMessage.Headers.Authorization);
    }
}
