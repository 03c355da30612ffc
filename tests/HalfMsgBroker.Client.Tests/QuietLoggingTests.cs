using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Client.Tests;

/// <summary>
/// The SDK is quiet by default: a long poll logs nothing at Information from HttpClientFactory or Polly, and a
/// clean shutdown of a pull consumer in the middle of a long poll logs no cancellation exception.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class QuietLoggingTests(BrokerFixture broker)
{
    private readonly string _topic = Names.Unique("quiet");
    private readonly string _group = Names.Unique("quiet-consumer");

    private static bool IsInformationOrAbove(string entry) =>
        entry.StartsWith("Information", StringComparison.Ordinal)
        || entry.StartsWith("Warning", StringComparison.Ordinal)
        || entry.StartsWith("Error", StringComparison.Ordinal)
        || entry.StartsWith("Critical", StringComparison.Ordinal);

    private static string CategoryOf(string entry) => entry[(entry.IndexOf(' ', StringComparison.Ordinal) + 1)..entry.IndexOf('[', StringComparison.Ordinal)];

    private async Task<bool> SubscribedAsync()
    {
        try
        {
            return (await broker.Client.GetConsumerGroupAsync(_group)).Subscriptions.Count == 1;
        }
        catch (HalfMsgException ex) when (ex.Status == 404)
        {
            return false;
        }
    }

    [Fact]
    public async Task A_long_poll_and_a_clean_shutdown_log_nothing_at_Information_from_HttpClient_or_Polly()
    {
        var logs = new CapturedLogs();
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // No defaults: the test folder's appsettings.json (the broker's) would filter HttpClient to Warning.
        var host = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        host.Logging.ClearProviders().SetMinimumLevel(LogLevel.Trace).AddProvider(logs);
        host.Services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = broker.BaseAddress;
            o.ApiKey = KeyedBrokerFixture.AdminKey;
        }).AddPullConsumer<Order>(_group, _topic, (_, _, _) =>
        {
            received.TrySetResult();
            return Task.CompletedTask;
        }, o => o.WaitTime = TimeSpan.FromSeconds(1));

        using (var app = host.Build())
        {
            await app.StartAsync();
            var client = app.Services.GetRequiredService<IHalfMsgClient>();
            // Long polls that end empty (the consumer's, and one of the test's), then one that brings a message.
            await Eventually.UntilAsync(SubscribedAsync, ok => ok, "the pull consumer's subscription");
            Assert.Empty(await client.ReceiveAsync(_group, _topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(1) }));
            await client.SendAsync(_topic, new Order("q-1", 1));
            await received.Task.WaitAsync(TimeSpan.FromSeconds(15));
            // The consumer is back in a long poll (20 s would be its default; 1 s here) when the host stops.
            await app.StopAsync();
        }

        var loud = logs.Entries.Where(IsInformationOrAbove).ToList();
        Assert.DoesNotContain(loud, e => CategoryOf(e).StartsWith("System.Net.Http.HttpClient", StringComparison.Ordinal));
        Assert.DoesNotContain(loud, e => CategoryOf(e).StartsWith("Polly", StringComparison.Ordinal));
        Assert.DoesNotContain(loud, e => e.Contains("TaskCanceledException", StringComparison.Ordinal) || e.Contains("OperationCanceledException", StringComparison.Ordinal));
        // The capture worked: Polly's lines are there, at Debug.
        Assert.Contains(logs.Entries, e => e.StartsWith("Debug Polly", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_handler_stopped_by_a_clean_shutdown_logs_no_exception_and_its_message_comes_back()
    {
        var logs = new CapturedLogs();
        var running = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var host = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        host.Logging.ClearProviders().SetMinimumLevel(LogLevel.Trace).AddProvider(logs);
        host.Services.AddHalfMsgClient(o =>
        {
            o.BaseAddress = broker.BaseAddress;
            o.ApiKey = KeyedBrokerFixture.AdminKey;
        }).AddPullConsumer<Order>(_group, _topic, async (delivery, _, ct) =>
        {
            running.TrySetResult(delivery.MessageId);
            await Task.Delay(Timeout.Infinite, ct); // a handler that honours the shutdown
        }, o => o.WaitTime = TimeSpan.FromSeconds(1));

        string messageId;
        using (var app = host.Build())
        {
            await app.StartAsync();
            await Eventually.UntilAsync(SubscribedAsync, ok => ok, "the pull consumer's subscription");
            await broker.Client.SendAsync(_topic, new Order("q-2", 1));
            messageId = await running.Task.WaitAsync(TimeSpan.FromSeconds(15));
            await app.StopAsync();
        }

        var loud = logs.Entries.Where(IsInformationOrAbove).ToList();
        Assert.DoesNotContain(loud, e => e.Contains("CanceledException", StringComparison.Ordinal));
        Assert.Contains(loud, e => e.Contains("stopped by the shutdown", StringComparison.Ordinal) && e.Contains(messageId, StringComparison.Ordinal));
        // Nacked on the way out: the message is deliverable again at once, not after its invisibility.
        var again = await Eventually.UntilAsync(
            () => broker.Client.ReceiveAsync(_group, _topic, new ReceiveOptions { WaitTime = TimeSpan.FromSeconds(1) }),
            batch => batch.Count == 1,
            "the message to come back");
        Assert.Equal((messageId, 2), (again[0].MessageId, again[0].Attempt));
    }
}
