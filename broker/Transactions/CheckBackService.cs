using System.Text.Json;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Hosting;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Outbound;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Transactions;

/// <summary>
/// Owns the check-back loop: reads prepared messages whose next check is due from the due-time
/// index, marks them as being checked (through the writer), calls each producer group's checkUrl
/// with a bounded number in flight, and writes each answer back. Sleeps until the earliest due time.
/// </summary>
internal sealed class CheckBackService(
    IMessageStore store,
    StoreWriter writer,
    CheckSchedule schedule,
    OutboundHttp http,
    IOptions<BrokerOptions> options,
    TimeProvider time,
    ILogger<CheckBackService> logger) : BackgroundService
{
    private const int MaxAnswerBytes = 64 * 1024;
    private static readonly TimeSpan LeaseMargin = TimeSpan.FromSeconds(1);
    private const int DefaultCheckTimeoutMs = 3000;
    private const string MessageIdHeader = "HalfMsg-Message-Id";

    private readonly TransactionOptions _options = options.Value.Transactions;
    private readonly IReadOnlyList<string> _brokerSecrets = options.Value.Signing.Secrets;
    private readonly SemaphoreSlim _slots = new(Math.Max(1, options.Value.Transactions.MaxChecksInFlight));
    private readonly HashSet<Task> _running = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!await CheckDueAsync(stoppingToken)) await SleepUntilDueAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                logger.LogError(e, "The check-back loop failed; retrying shortly");
                await schedule.Signal.WaitAsync(TimeSpan.FromSeconds(1), time, stoppingToken);
            }
        }

        Task[] running;
        lock (_running) running = [.. _running];
        await Task.WhenAll(running);
    }

    /// <returns>True when it started checks (so there may be more due right away).</returns>
    private async Task<bool> CheckDueAsync(CancellationToken cancellationToken)
    {
        if (_slots.CurrentCount == 0)
        {
            await _slots.WaitAsync(cancellationToken);
            _slots.Release();
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var due = store.DueChecks(now, _slots.CurrentCount);
        if (due.Count == 0) return false;

        var groups = due.Select(m => m.ProducerGroup).OfType<string>().Distinct(StringComparer.Ordinal)
            .ToDictionary(g => g, store.GetProducerGroup, StringComparer.Ordinal);
        var leases = due.Select(m => (m.Id, TimeSpan.FromMilliseconds(TimeoutOf(m, groups)) + LeaseMargin)).ToList();
        var toSend = await writer.Submit(new BeginChecks(leases), cancellationToken);

        foreach (var check in toSend)
        {
            await _slots.WaitAsync(cancellationToken);
            var group = check.ProducerGroup is { } name ? groups.GetValueOrDefault(name) : null;
            var task = CheckOneAsync(check, group, cancellationToken);
            lock (_running) _running.Add(task);
            _ = task.ContinueWith(t => { lock (_running) _running.Remove(t); }, TaskScheduler.Default);
        }
        return true;
    }

    private async Task SleepUntilDueAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        // Plan before reading the index: a half message stored meanwhile that is due sooner nudges us.
        var wakeAt = now + (long)_options.IdleScanInterval.TotalMilliseconds;
        schedule.Plan(wakeAt);
        wakeAt = Math.Min(store.EarliestCheckDue() ?? long.MaxValue, wakeAt);
        schedule.Plan(wakeAt);
        await schedule.Signal.WaitAsync(TimeSpan.FromMilliseconds(Math.Max(0, wakeAt - now)), time, cancellationToken);
    }

    private async Task CheckOneAsync(CheckToSend check, ProducerGroup? group, CancellationToken cancellationToken)
    {
        try
        {
            var (answer, text) = group?.CheckUrl is { } url
                ? await AskProducerAsync(url, group, check, cancellationToken)
                : (CheckAnswer.Unknown, "no checkUrl");
            var outcome = await writer.Submit(new ApplyCheckAnswer(check.Message.Id, check.CheckNumber, answer, text), cancellationToken);
            logger.LogDebug("Check {Number} of transaction {TransactionId}: {Answer} -> {Outcome}",
                check.CheckNumber, check.TransactionId, text, outcome);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // The check's lease runs out and the message is checked again: nothing is lost.
            logger.LogError(e, "Check-back of transaction {TransactionId} failed", check.TransactionId);
        }
        finally
        {
            _slots.Release();
        }
    }

    private async Task<(CheckAnswer, string)> AskProducerAsync(string url, ProducerGroup group, CheckToSend check, CancellationToken cancellationToken)
    {
        var m = check.Message;
        var body = JsonSerializer.SerializeToUtf8Bytes(
            new CheckRequestBody(check.TransactionId, m.Id.ToString(), m.Topic, check.ProducerGroup, m.Tag, m.Keys, m.Properties,
                new RawJson(m.Body), check.CheckNumber, Times.ToUtc(m.BornAt)),
            BrokerJsonContext.Default.CheckRequestBody);
        // The message id travels as a header too, so a receiver can verify a v2 signature before parsing the body.
        var signing = CallSigning.For(_brokerSecrets, group.Signing, m.Id, time.GetUtcNow().ToUnixTimeMilliseconds());
        var result = await http.PostJsonAsync(
            url, body, group.CheckTimeoutMs, [new(MessageIdHeader, m.Id.ToString())], signing, MaxAnswerBytes, cancellationToken);
        BrokerMetrics.Checks.Add(1);
        return result.IsSuccess ? ReadAnswer(result.Body) : (CheckAnswer.Unknown, result.Describe());
    }

    /// <summary>Reads <c>{"state": …}</c>, accepting RocketMQ's names too; anything else is unknown.</summary>
    internal static (CheckAnswer, string) ReadAnswer(byte[] body)
    {
        string? state;
        try
        {
            state = JsonSerializer.Deserialize(body, BrokerJsonContext.Default.CheckAnswerBody)?.State;
        }
        catch (JsonException)
        {
            return (CheckAnswer.Unknown, "unreadable answer");
        }
        return state?.ToUpperInvariant() switch
        {
            "COMMIT" or "COMMIT_MESSAGE" => (CheckAnswer.Commit, "commit"),
            "ROLLBACK" or "ROLLBACK_MESSAGE" => (CheckAnswer.Rollback, "rollback"),
            "UNKNOWN" or "UNKNOW" => (CheckAnswer.Unknown, "unknown"),
            _ => (CheckAnswer.Unknown, "unreadable answer"),
        };
    }

    private static int TimeoutOf(StoredMessage m, Dictionary<string, ProducerGroup?> groups) =>
        m.ProducerGroup is { } name && groups.GetValueOrDefault(name) is { } g ? g.CheckTimeoutMs : DefaultCheckTimeoutMs;
}
