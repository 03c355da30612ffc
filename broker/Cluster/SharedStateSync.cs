using System.Globalization;
using System.Threading.Channels;
using HalfMsgBroker.Access;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Storage;
using HalfMsgBroker.Storage.PostgreSql;
using HalfMsgBroker.Transactions;

namespace HalfMsgBroker.Cluster;

/// <summary>
/// Many active brokers on one database: keeps what this broker holds in memory from the store in step with the others'
/// changes. A configuration change is announced on <see cref="ConfigChange.Channel"/> in its own transaction; this
/// broker then reads that item as committed and applies it the way its own writer's after-commit effect does
/// (subscriptions: <see cref="StoredSubscriptions.Reload"/>, which a request's adoption of an unheard-of subscription
/// shares a lock with; API keys: the registry's keys are read again). Producer groups need nothing: every use reads them from the database. A check due
/// soon (<see cref="PostgreSqlMessageStore.CheckDueChannel"/>) wakes the check-back loop if it sleeps past it. After the
/// LISTEN connection came back (notifications sent meanwhile are lost), and after a batch of this broker's own whose
/// outcome is unknown, everything is read again. Every reload reads the current committed state, so the last one
/// applied after the last change leaves memory as the database has it, whatever order they arrive in.
/// </summary>
internal sealed class SharedStateSync(
    PostgreSqlNotifications notifications,
    IMessageStore store,
    StoredSubscriptions subscriptions,
    ApiKeyRegistry keys,
    CheckSchedule checks,
    ILogger<SharedStateSync> logger) : BackgroundService
{
    private const string ReloadAll = "";
    private static readonly TimeSpan RetryAfterFailure = TimeSpan.FromSeconds(1);

    // Filled by the listening thread, which must not block: reloads read the database.
    private readonly Channel<string> _changes = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });

    // Held by every reload, and by a test that makes this broker late to hear (HoldAsync).
    private readonly SemaphoreSlim _applying = new(1, 1);

    private PostgreSqlMessageStore Store => (PostgreSqlMessageStore)store;

    /// <summary>
    /// Tests: once a reload in progress ends, this broker applies nothing it hears (it stays queued) until
    /// <see cref="Release"/>, as if the notifications were late.
    /// </summary>
    internal Task HoldAsync() => _applying.WaitAsync();

    internal void Release() => _applying.Release();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        notifications.Reconnected += RequestReloadAll;
        Store.OutcomeUnknownCarriedOn += RequestReloadAll;
        try
        {
            await Task.WhenAll(
                notifications.ListenAsync(ConfigChange.Channel, payload => _changes.Writer.TryWrite(payload)),
                notifications.ListenAsync(PostgreSqlMessageStore.CheckDueChannel, CheckDue)).WaitAsync(stoppingToken);
            // Changes made between this broker's start-up reads and its first LISTEN were announced to nobody here.
            RequestReloadAll();
            await foreach (var change in _changes.Reader.ReadAllAsync(stoppingToken))
            {
                await _applying.WaitAsync(stoppingToken);
                try
                {
                    Apply(change);
                }
                catch (Exception e) when (e is StoreUnavailableException)
                {
                    logger.LogWarning("Reloading shared configuration failed ({Error}); reading everything again in {Delay} s", e.Message, RetryAfterFailure.TotalSeconds);
                    await Task.Delay(RetryAfterFailure, stoppingToken);
                    RequestReloadAll();
                }
                finally
                {
                    _applying.Release();
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            notifications.Reconnected -= RequestReloadAll;
            Store.OutcomeUnknownCarriedOn -= RequestReloadAll;
        }
    }

    public override void Dispose()
    {
        _applying.Dispose();
        base.Dispose();
    }

    private void RequestReloadAll() => _changes.Writer.TryWrite(ReloadAll);

    private void CheckDue(string payload)
    {
        if (long.TryParse(payload, NumberStyles.Integer, CultureInfo.InvariantCulture, out var due)) checks.Nudge(due);
    }

    private void Apply(string change)
    {
        if (change.Length == 0)
        {
            ReloadEverything();
            return;
        }
        var (kind, key) = ConfigChange.Parse(change);
        switch (kind)
        {
            case ConfigChange.SubscriptionKind when key.Length == 2:
                subscriptions.Reload(key[0], key[1]);
                break;
            case ConfigChange.ApiKeyKind:
                keys.Reload();
                break;
            default:
                // Producer groups are read from the database at every use; kinds of a newer broker are not ours.
                break;
        }
    }

    private void ReloadEverything()
    {
        var count = subscriptions.ReloadAll();
        keys.Reload();
        // A check another broker made due soon may have been announced while nobody listened.
        checks.Signal.Set();
        logger.LogInformation("Reloaded {Count} subscriptions and the API keys from the database", count);
    }
}
