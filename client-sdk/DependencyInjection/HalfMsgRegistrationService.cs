using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Client;

/// <summary>One start-up registration with the broker (a producer group or a subscription).</summary>
internal sealed record HalfMsgRegistration(string Description, Func<IServiceProvider, IHalfMsgClient, CancellationToken, Task> RegisterAsync);

/// <summary>
/// Registers producer groups and subscriptions once the application has started (so a check or push
/// endpoint on this app is listening), retrying until the broker accepts them.
/// </summary>
internal sealed partial class HalfMsgRegistrationService(
    IEnumerable<HalfMsgRegistration> registrations,
    IServiceProvider services,
    IHalfMsgClient client,
    IHostApplicationLifetime lifetime,
    ILogger<HalfMsgRegistrationService> logger) : BackgroundService, IHalfMsgRegistrationStatus
{
    private readonly TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when every registration succeeded.</summary>
    public Task Registered => _registered.Task;

    /// <inheritdoc />
    public bool IsRegistered => _registered.Task.IsCompletedSuccessfully;

    /// <inheritdoc />
    public Task WhenRegistered => _registered.Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        using (stoppingToken.Register(() => started.TrySetCanceled(stoppingToken)))
        {
            try
            {
                await started.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        foreach (var registration in registrations)
        {
            var attempt = 0;
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await registration.RegisterAsync(services, client, stoppingToken).ConfigureAwait(false);
                    LogRegistered(registration.Description);
                    break;
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex)
                {
                    attempt++;
                    var delay = TimeSpan.FromMilliseconds(Math.Min(30_000, 200 * Math.Pow(2, Math.Min(attempt, 8))));
                    LogFailed(ex, registration.Description, delay);
                    try
                    {
                        await Task.Delay(delay, stoppingToken).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            }
        }

        _registered.TrySetResult();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "HalfMsgBroker: registered {Registration}")]
    private partial void LogRegistered(string registration);

    [LoggerMessage(Level = LogLevel.Warning, Message = "HalfMsgBroker: registering {Registration} failed; retrying in {Delay}")]
    private partial void LogFailed(Exception ex, string registration, TimeSpan delay);
}
