using System.Collections.Concurrent;
using System.Data.Common;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HalfMsgBroker.Client;

/// <summary>
/// Sends the outbox's committed rows to the broker: claims due rows with a lease, sends each as a plain
/// message with its row id as <c>Idempotency-Key</c> (so a row sent twice, after a crash or a lost lease,
/// is stored once), deletes or marks the rows the broker accepted, and puts failed ones off with
/// exponential backoff. It wakes every <see cref="HalfMsgOutboxOptions.PollInterval"/>, and at once on
/// <see cref="IOutbox.Notify"/> or after a full batch.
/// </summary>
internal sealed partial class OutboxRelay : BackgroundService
{
    private static readonly TimeSpan PurgeEvery = TimeSpan.FromMinutes(1);

    private readonly IHalfMsgApi _api;
    private readonly Func<DbConnection> _createConnection;
    private readonly HalfMsgOutboxOptions _options;
    private readonly OutboxTable _table;
    private readonly OutboxSignal _signal;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private long _claims;
    private long _passes;
    private DateTimeOffset _nextPurge;

    public OutboxRelay(IHalfMsgApi api, Func<DbConnection> createConnection, HalfMsgOutboxOptions options, OutboxSignal signal, TimeProvider time, ILogger<OutboxRelay> logger)
    {
        _api = api;
        _createConnection = createConnection;
        _options = options;
        _table = new OutboxTable(options.TableName, options.ParameterPrefix);
        _signal = signal;
        _time = time;
        _logger = logger;
        RelayId = options.RelayId ?? $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";
    }

    /// <summary>This relay's name in <c>lease_owner</c> (followed by <c>/</c> and the claim's number).</summary>
    public string RelayId { get; }

    /// <summary>Passes completed (each: claim, send, record), for tests that wait for one.</summary>
    public long Passes => Interlocked.Read(ref _passes);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_options.CreateTable)
        {
            var connection = _createConnection();
            await using (connection.ConfigureAwait(false))
            {
                await _table.EnsureCreatedAsync(connection, cancellationToken).ConfigureAwait(false);
            }
        }

        if (_options.RunRelay)
        {
            await base.StartAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            _signal.Reset();
            var more = false;
            try
            {
                more = await PassAsync(stoppingToken).ConfigureAwait(false);
                failures = 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // The database, not the broker (send failures are recorded per row): wait longer each time.
                failures++;
                LogPassFailed(ex, _options.TableName);
            }

            Interlocked.Increment(ref _passes);
            if (more)
            {
                continue;
            }

            var wait = failures == 0 ? _options.PollInterval : Max(_options.PollInterval, Backoff(failures, Random.Shared.NextDouble()));
            using var cancelDelay = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            await Task.WhenAny(_signal.Woken, Task.Delay(wait, _time, cancelDelay.Token)).ConfigureAwait(false);
            await cancelDelay.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One pass: claim a batch, send it, record the outcomes. True when the batch was full (more may be due).</summary>
    private async Task<bool> PassAsync(CancellationToken stoppingToken)
    {
        var connection = _createConnection();
        await using (connection.ConfigureAwait(false))
        {
            await DbHelpers.EnsureOpenAsync(connection, stoppingToken).ConfigureAwait(false);
            var now = _time.GetUtcNow();
            await PurgeIfDueAsync(connection, now, stoppingToken).ConfigureAwait(false);

            var owner = RelayId + "/" + Interlocked.Increment(ref _claims).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var nowMs = now.ToUnixTimeMilliseconds();
            var rows = await _table.ClaimAsync(connection, owner, nowMs, nowMs + (long)_options.LeaseDuration.TotalMilliseconds, _options.BatchSize, stoppingToken).ConfigureAwait(false);
            if (rows.Count == 0)
            {
                return false;
            }

            // Sends stop at half the lease, so no other relay can claim a row while its send is still running.
            using var leaseDeadline = new CancellationTokenSource(_options.LeaseDuration / 2, _time);
            using var sendToken = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, leaseDeadline.Token);
            var outcomes = new ConcurrentQueue<(OutboxRow Row, Exception? Error)>();
            await Parallel.ForEachAsync(
                rows,
                new ParallelOptions { MaxDegreeOfParallelism = _options.MaxConcurrentSends },
                async (row, _) => outcomes.Enqueue((row, await SendAsync(row, sendToken.Token).ConfigureAwait(false)))).ConfigureAwait(false);

            // Recorded even while stopping: a send the broker accepted should not be sent again needlessly.
            foreach (var (row, error) in outcomes)
            {
                await RecordAsync(connection, owner, row, error, stoppingToken.IsCancellationRequested).ConfigureAwait(false);
            }

            return rows.Count == _options.BatchSize;
        }
    }

    private async Task<Exception?> SendAsync(OutboxRow row, CancellationToken cancellationToken)
    {
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var body = JsonDocument.Parse(row.Body);
            var request = new SendMessageRequest(
                body.RootElement,
                row.Tag,
                row.Keys is null ? null : JsonSerializer.Deserialize(row.Keys, OutboxJsonContext.Default.StringArray),
                row.Properties is null ? null : JsonSerializer.Deserialize(row.Properties, OutboxJsonContext.Default.DictionaryStringString),
                null,
                row.DelaySeconds > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAt).AddSeconds(row.DelaySeconds) : null);
            await _api.SendMessageAsync(row.Topic, request, row.Id, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }

    private async Task RecordAsync(DbConnection connection, string owner, OutboxRow row, Exception? error, bool stopping)
    {
        var now = _time.GetUtcNow();
        if (error is null)
        {
            if (!await _table.MarkSentAsync(connection, row.Id, owner, now.ToUnixTimeMilliseconds(), _options.SentRetention > TimeSpan.Zero, CancellationToken.None).ConfigureAwait(false))
            {
                LogLeaseLost(row.Id, row.Topic);
            }

            return;
        }

        if (stopping && error is OperationCanceledException)
        {
            // Not a failure of the row: give it back at once (the broker may have it; the key dedupes a resend).
            await _table.ReleaseAsync(connection, row.Id, owner, CancellationToken.None).ConfigureAwait(false);
            return;
        }

        var delay = Backoff(row.Attempts + 1, Random.Shared.NextDouble());
        var reason = error is OperationCanceledException
            ? $"not sent within half the lease ({_options.LeaseDuration / 2})"
            : error is HalfMsgException { Status: > 0 } broker ? $"{broker.Status} {broker.Code}: {broker.Message}" : error.GetBaseException().Message;
        await _table.MarkFailedAsync(connection, row.Id, owner, (now + delay).ToUnixTimeMilliseconds(), reason, CancellationToken.None).ConfigureAwait(false);
        LogSendFailed(error is OperationCanceledException ? null : error, row.Id, row.Topic, row.Attempts + 1, delay, reason);
    }

    private async Task PurgeIfDueAsync(DbConnection connection, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (_options.SentRetention <= TimeSpan.Zero || now < _nextPurge)
        {
            return;
        }

        _nextPurge = now + PurgeEvery;
        var purged = await _table.PurgeSentAsync(connection, (now - _options.SentRetention).ToUnixTimeMilliseconds(), cancellationToken).ConfigureAwait(false);
        if (purged > 0)
        {
            LogPurged(purged, _options.TableName);
        }
    }

    /// <summary>
    /// The wait after the <paramref name="failures"/>-th failure in a row: <see cref="HalfMsgOutboxOptions.RetryDelay"/>
    /// doubled per earlier failure, capped at <see cref="HalfMsgOutboxOptions.MaxRetryDelay"/>, then scaled into
    /// [half, whole] by <paramref name="jitter"/> (0–1), so rows that failed together do not come back together.
    /// </summary>
    internal TimeSpan Backoff(int failures, double jitter)
    {
        var exponential = _options.RetryDelay.TotalMilliseconds * Math.Pow(2, Math.Clamp(failures - 1, 0, 30));
        var capped = Math.Min(exponential, _options.MaxRetryDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(capped * (0.5 + (0.5 * Math.Clamp(jitter, 0, 1))));
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    [LoggerMessage(Level = LogLevel.Warning, Message = "HalfMsg outbox: sending row {RowId} to topic {Topic} failed (attempt {Attempt}); next attempt in {Delay}: {Reason}")]
    private partial void LogSendFailed(Exception? ex, string rowId, string topic, int attempt, TimeSpan delay, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "HalfMsg outbox: a relay pass on table {Table} failed")]
    private partial void LogPassFailed(Exception ex, string table);

    [LoggerMessage(Level = LogLevel.Information, Message = "HalfMsg outbox: row {RowId} (topic {Topic}) was sent after its lease ran out; another relay may send it again, and the broker stores it once (Idempotency-Key)")]
    private partial void LogLeaseLost(string rowId, string topic);

    [LoggerMessage(Level = LogLevel.Debug, Message = "HalfMsg outbox: deleted {Count} sent rows past their retention from {Table}")]
    private partial void LogPurged(int count, string table);
}
