using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Client;

/// <summary>The background loop behind <c>AddPullConsumer</c>.</summary>
/// <typeparam name="T">The body type.</typeparam>
internal sealed partial class PullConsumerService<T>(
    IHalfMsgClient client,
    IServiceScopeFactory scopes,
    Func<HalfMsgDelivery<T>, IServiceProvider, CancellationToken, Task> handler,
    PullConsumerOptions options,
    ILogger<PullConsumerService<T>> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<Task, byte> _running = new();
    private readonly string _consumerGroup = options.ConsumerGroup!;
    private readonly string _topic = options.Topic!;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        if (options.EnsureSubscription && !await EnsureSubscriptionAsync(stoppingToken).ConfigureAwait(false))
        {
            return;
        }

        using var slots = new SemaphoreSlim(options.MaxConcurrency, options.MaxConcurrency);
        var failures = 0;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await slots.WaitAsync(stoppingToken).ConfigureAwait(false);
                var free = 1;
                while (slots.Wait(0))
                {
                    free++;
                }

                IReadOnlyList<ReceivedMessage> batch;
                try
                {
                    batch = await client.ReceiveAsync(
                        _consumerGroup,
                        _topic,
                        new ReceiveOptions { MaxMessages = Math.Min(free, HalfMsgLimits.MaxReceiveMessages), WaitTime = options.WaitTime, InvisibleFor = options.InvisibleFor },
                        stoppingToken).ConfigureAwait(false);
                    failures = 0;
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    slots.Release(free);
                    failures++;
                    var delay = TimeSpan.FromMilliseconds(Math.Min(30_000, 250 * Math.Pow(2, Math.Min(failures, 8))));
                    LogReceiveFailed(ex, _consumerGroup, _topic, delay);
                    await Task.Delay(delay, stoppingToken).ConfigureAwait(false);
                    continue;
                }
                catch (OperationCanceledException)
                {
                    slots.Release(free);
                    break;
                }

                if (free > batch.Count)
                {
                    slots.Release(free - batch.Count);
                }

                foreach (var message in batch)
                {
                    var task = ProcessAsync(message, slots, stoppingToken);
                    _running.TryAdd(task, 0);
                    _ = task.ContinueWith(t => _running.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // shutting down
        }
        finally
        {
            await Task.WhenAll(_running.Keys).ConfigureAwait(false);
        }
    }

    private async Task<bool> EnsureSubscriptionAsync(CancellationToken stoppingToken)
    {
        var attempt = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await client.PutSubscriptionAsync(_consumerGroup, _topic, options.ToSubscription(), stoppingToken).ConfigureAwait(false);
                return true;
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                attempt++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(30_000, 200 * Math.Pow(2, Math.Min(attempt, 8))));
                LogSubscribeFailed(ex, _consumerGroup, _topic, delay);
                try
                {
                    await Task.Delay(delay, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return false;
                }
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        return false;
    }

    private async Task ProcessAsync(ReceivedMessage message, SemaphoreSlim slots, CancellationToken stoppingToken)
    {
        using var extenderStop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var extender = ExtendWhileRunningAsync(message, extenderStop.Token);
        try
        {
            HalfMsgDelivery<T> delivery;
            try
            {
                delivery = message.ToDelivery<T>();
            }
            catch (System.Text.Json.JsonException ex)
            {
                LogHandlerFailed(ex, message.MessageId, message.Attempt);
                await SettleAsync(message, success: false).ConfigureAwait(false);
                return;
            }

            var scope = scopes.CreateAsyncScope();
            await using (scope.ConfigureAwait(false))
            {
                bool success;
                using var activity = HalfMsgDiagnostics.StartProcess(
                    message.Topic, message.MessageId, message.ConsumerGroup, message.Attempt, message.Data.TraceParent);
                try
                {
                    await handler(delivery, scope.ServiceProvider, stoppingToken).ConfigureAwait(false);
                    success = true;
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    // A clean shutdown stopped the handler: no failure to report, and no stack in the log.
                    LogHandlerStopped(message.MessageId);
                    success = false;
                }
                catch (Exception ex)
                {
                    HalfMsgDiagnostics.Failed(activity, ex);
                    LogHandlerFailed(ex, message.MessageId, message.Attempt);
                    success = false;
                }

                await extenderStop.CancelAsync().ConfigureAwait(false);
                await extender.ConfigureAwait(false);
                await SettleAsync(message, success).ConfigureAwait(false);
            }
        }
        finally
        {
            await extenderStop.CancelAsync().ConfigureAwait(false);
            await extender.ConfigureAwait(false);
            slots.Release();
        }
    }

    private async Task SettleAsync(ReceivedMessage message, bool success)
    {
        try
        {
            if (success)
            {
                if (!await message.AckAsync(CancellationToken.None).ConfigureAwait(false))
                {
                    LogStaleAck(message.MessageId);
                }
            }
            else
            {
                await message.NackAsync(options.RetryAfter, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            // the message becomes visible again when its invisibility runs out
            LogSettleFailed(ex, message.MessageId);
        }
    }

    private async Task ExtendWhileRunningAsync(ReceivedMessage message, CancellationToken cancellationToken)
    {
        try
        {
            using var timer = new PeriodicTimer(options.EffectiveExtendEvery);
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    await message.ExtendAsync(options.InvisibleFor, cancellationToken).ConfigureAwait(false);
                    LogExtended(message.MessageId);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogExtendFailed(ex, message.MessageId);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // handler finished
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "HalfMsg receive for {ConsumerGroup}/{Topic} failed; retrying in {Delay}")]
    private partial void LogReceiveFailed(Exception ex, string consumerGroup, string topic, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "HalfMsg subscription {ConsumerGroup}/{Topic} could not be registered; retrying in {Delay}")]
    private partial void LogSubscribeFailed(Exception ex, string consumerGroup, string topic, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "HalfMsg handler failed for message {MessageId} (attempt {Attempt}); nacking")]
    private partial void LogHandlerFailed(Exception ex, string messageId, int attempt);

    [LoggerMessage(Level = LogLevel.Information, Message = "HalfMsg handler for message {MessageId} stopped by the shutdown; nacking it for redelivery")]
    private partial void LogHandlerStopped(string messageId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "HalfMsg ack of {MessageId} was stale: it may be delivered again")]
    private partial void LogStaleAck(string messageId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "HalfMsg settling {MessageId} failed")]
    private partial void LogSettleFailed(Exception ex, string messageId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "HalfMsg extended invisibility of {MessageId}")]
    private partial void LogExtended(string messageId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "HalfMsg extending {MessageId} failed")]
    private partial void LogExtendFailed(Exception ex, string messageId);
}
