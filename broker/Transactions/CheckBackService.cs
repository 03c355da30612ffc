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
/// index, marks them as being checked (through the writer), calls each producer group's checkUrl,
/// and writes each answer back. Sleeps until the earliest due time.
/// Calls in flight are capped overall, per host:port, per producer group (maxChecksInFlight) and
/// shared fairly between groups (<see cref="FairSlots"/>); a group also starts at most
/// maxChecksPerSecond (<see cref="GroupPace"/>). The index is read in due order, so checks of a
/// group that may not start one now would hide every check due after them. A group with all its
/// calls out has its due checks held in memory until one ends (<see cref="StartHeldAsync"/>); one
/// out of tokens, or with a full hold, has them planned at its pace (<see cref="GroupPace.Plan"/>),
/// so they come due again one by one, interleaved with other groups'; a group held back by the shared pool or its
/// host is waited for while it still finishes checks, and once it has stalled (nothing finished for
/// <see cref="FairSlots.StallAfter"/>) its due checks are moved a check timeout later. Either move
/// is uncounted (<see cref="DeferChecks"/>), so the other groups' checks come up and go out.
/// </summary>
internal sealed class CheckBackService(
    IDueTimes store,
    IMessageLog log,
    StoreWriter writer,
    CheckSchedule schedule,
    OutboundHttp http,
    IOptions<BrokerOptions> options,
    TimeProvider time,
    ILogger<CheckBackService> logger,
    BrokerMetrics metrics) : BackgroundService
{
    private const int MaxAnswerBytes = 64 * 1024;
    private static readonly TimeSpan LeaseMargin = TimeSpan.FromSeconds(1);
    private const int DefaultCheckTimeoutMs = 3000;
    private const string MessageIdHeader = "HalfMsg-Message-Id";
    private const int MaxIdleOwners = 4096;

    /// <summary>How many due checks a pass reads after one that planned a group's backlog: one write moves many.</summary>
    private const int PlanReadLimit = 256;

    private readonly TransactionOptions _options = options.Value.Transactions;
    private readonly IReadOnlyList<string> _brokerSecrets = options.Value.Signing.Secrets;
    private readonly FairSlots _slots = new(
        options.Value.Transactions.MaxChecksInFlight,
        options.Value.Transactions.MaxChecksInFlight,
        options.Value.Transactions.MaxChecksInFlightPerHost,
        time);
    private readonly HashSet<Task> _running = [];

    // Touched by the loop only (releases change the owners' counts, under FairSlots' lock).
    private readonly Dictionary<string, GroupPace> _owners = new(StringComparer.Ordinal);
    private (SlotOwner Owner, string? Host)? _blocked;
    private bool _planning;

    private enum Pass
    {
        Progress,
        NothingDue,
        Blocked,
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                switch (await CheckDueAsync(stoppingToken))
                {
                    case Pass.NothingDue:
                        await SleepUntilDueAsync(stoppingToken);
                        break;
                    case Pass.Blocked:
                        await _slots.Released.WaitAsync(BlockedWait(), time, stoppingToken);
                        break;
                }
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

    private async Task<Pass> CheckDueAsync(CancellationToken cancellationToken)
    {
        if (_slots.Free == 0) return Pass.Blocked;
        // Held checks are older than anything the index can return for their group: they go first.
        var startedHeld = await StartHeldAsync(cancellationToken);
        var free = _slots.Free;
        if (free == 0) return startedHeld ? Pass.Progress : Pass.Blocked;
        var limit = _planning ? Math.Max(free, PlanReadLimit) : free;
        if (_blocked is { } blocked && !_slots.IsStalled(blocked.Owner, blocked.Host))
        {
            if (!_slots.CanAcquire(blocked.Owner, blocked.Host)) return Pass.Blocked;
            // The head of the index is that group's backlog, with room for a few more: reading every
            // free slot's worth each time would read its backlog over again for every check started.
            limit = Math.Min(free, _slots.Room(blocked.Owner, blocked.Host) + 1);
        }
        _blocked = null;

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var due = store.DueChecks(now, limit);
        if (_planning && due.Count == limit)
        {
            // A backlog being planned fills the head of the index; what came due last may be another
            // group's check, which must not wait until the whole backlog has been moved.
            var seen = due.Select(m => m.Id).ToHashSet();
            due = [.. due, .. store.DueChecks(now, Math.Max(1, free), latestFirst: true).Where(m => !seen.Contains(m.Id))];
        }
        if (due.Count == 0) return Pass.NothingDue;

        var groups = due.Select(m => m.ProducerGroup).OfType<string>().Distinct(StringComparer.Ordinal)
            .ToDictionary(g => g, log.GetProducerGroup, StringComparer.Ordinal);
        var hosts = groups.ToDictionary(g => g.Key, g => FairSlots.HostOf(g.Value?.CheckUrl), StringComparer.Ordinal);
        var begin = new List<CheckStart>(due.Count);
        var slots = new Dictionary<Guid, (GroupPace Pace, string? Host)>(due.Count);
        List<(Guid, long)>? defer = null;
        var planned = 0;
        var holdUntil = now + (long)HoldFor.TotalMilliseconds;
        foreach (var m in due)
        {
            var timeoutMs = TimeoutOf(m, groups);
            var lease = TimeSpan.FromMilliseconds(timeoutMs) + LeaseMargin;
            if (m.State != MessageState.Prepared || TransactionLifecycle.IsExhausted(m, now, _options))
            {
                // Ended meanwhile, or rolled back by BeginChecks without a call: no slot needed.
                begin.Add(new CheckStart(m.Id, lease));
                continue;
            }
            var pace = PaceOf(m.ProducerGroup, groups);
            var owner = pace.Slots;
            var host = m.ProducerGroup is { } name ? hosts.GetValueOrDefault(name) : null;
            if (pace.IsHeld(m.Id) ? pace.Renew(m.Id, holdUntil, HoldFor) : pace.AtInFlightCap && !pace.OutOfTokens && pace.TryHold(m.Id, holdUntil, HoldFor))
            {
                // Every call of its group is out (or its hold ran out first): moved out of the way, kept in memory.
                (defer ??= []).Add((m.Id, holdUntil));
                planned++;
            }
            else if (!pace.MayStart)
            {
                (defer ??= []).Add((m.Id, pace.Plan(now)));
                planned++;
            }
            else if (_slots.TryAcquire(owner, host))
            {
                pace.Spend();
                begin.Add(new CheckStart(m.Id, lease));
                slots[m.Id] = (pace, host);
            }
            else if (_slots.Free == 0)
            {
                break;
            }
            else if (_slots.IsStalled(owner, host))
            {
                (defer ??= []).Add((m.Id, now + Math.Max(timeoutMs, (long)FairSlots.StallAfter.TotalMilliseconds)));
            }
            else
            {
                _blocked ??= (owner, host);
            }
        }

        if (begin.Count > 0) await BeginAsync(begin, slots, groups, cancellationToken);
        // Held or planned, the backlog left the head of the index: the next pass reads further.
        _planning = planned > 0;
        if (defer is not null)
        {
            var deferred = await writer.Submit(new DeferChecks(defer), cancellationToken);
            logger.LogDebug("Deferred {Count} due checks ({Planned} planned at their group's pace, the rest of stalled producers)", deferred, planned);
        }
        return startedHeld || begin.Count > 0 || defer is not null ? Pass.Progress : Pass.Blocked;
    }

    /// <summary>
    /// Starts the held checks of every group that has a call free again, oldest first. A held check is
    /// a due check of a group that had all its maxChecksInFlight calls out: its index entry was moved
    /// <see cref="HoldFor"/> later (so it hides no other group's checks, and comes back if the broker
    /// stops) and its id kept here, so it starts the moment one of the group's calls ends — at the pace
    /// the producer really answers, with no estimate to get wrong.
    /// </summary>
    private async Task<bool> StartHeldAsync(CancellationToken cancellationToken)
    {
        List<CheckStart>? begin = null;
        Dictionary<Guid, (GroupPace Pace, string? Host)>? slots = null;
        Dictionary<string, ProducerGroup?>? groups = null;
        foreach (var (name, pace) in _owners)
        {
            if (!pace.HasHeld || !pace.MayStart) continue;
            var group = name.Length == 0 ? null : log.GetProducerGroup(name);
            var host = FairSlots.HostOf(group?.CheckUrl);
            var lease = TimeSpan.FromMilliseconds(group?.CheckTimeoutMs ?? DefaultCheckTimeoutMs) + LeaseMargin;
            while (pace.MayStart && _slots.CanAcquire(pace.Slots, host) && pace.TryTakeHeld(out var id, out var heldUntil))
            {
                if (!_slots.TryAcquire(pace.Slots, host)) break;
                pace.Spend();
                (begin ??= []).Add(new CheckStart(id, lease, heldUntil));
                (slots ??= [])[id] = (pace, host);
                (groups ??= new(StringComparer.Ordinal))[name] = group;
            }
        }
        if (begin is null) return false;
        await BeginAsync(begin, slots!, groups!, cancellationToken);
        return true;
    }

    /// <summary>How long a held check's index entry is moved: how late it comes up again if the broker stops meanwhile.</summary>
    private TimeSpan HoldFor => _options.CheckInterval > TimeSpan.FromSeconds(10) ? _options.CheckInterval : TimeSpan.FromSeconds(10);

    private async Task BeginAsync(
        List<CheckStart> begin,
        Dictionary<Guid, (GroupPace Pace, string? Host)> slots,
        Dictionary<string, ProducerGroup?> groups,
        CancellationToken cancellationToken)
    {
        try
        {
            foreach (var check in await writer.Submit(new BeginChecks(begin), cancellationToken))
            {
                // Every check BeginChecks hands out was read prepared and given a slot above.
                if (!slots.Remove(check.Message.Id, out var slot)) continue;
                var group = check.ProducerGroup is { } name ? groups.GetValueOrDefault(name) : null;
                var task = CheckOneAsync(check, group, slot.Pace, slot.Host, cancellationToken);
                lock (_running) _running.Add(task);
                _ = task.ContinueWith(t => { lock (_running) _running.Remove(t); }, TaskScheduler.Default);
            }
        }
        finally
        {
            // Slots of messages that ended or were rolled back meanwhile, or of a failed write.
            foreach (var (pace, host) in slots.Values) _slots.Release(pace.Slots, host);
        }
    }

    /// <summary>The group's pace, with the limits it has now: stored on the group, or the broker's defaults.</summary>
    private GroupPace PaceOf(string? group, Dictionary<string, ProducerGroup?> groups)
    {
        var key = group ?? "";
        if (!_owners.TryGetValue(key, out var pace))
        {
            if (_owners.Count >= MaxIdleOwners)
            {
                // Only this loop takes slots and plans, so an idle group cannot become busy meanwhile.
                var now = time.GetUtcNow().ToUnixTimeMilliseconds();
                foreach (var idle in _owners.Where(o => o.Value.IsIdle(now)).ToList()) _owners.Remove(idle.Key);
            }
            _owners[key] = pace = new GroupPace(time);
        }
        var stored = group is null ? null : groups.GetValueOrDefault(group);
        pace.Configure(
            stored?.MaxChecksInFlight ?? _options.ProducerGroupMaxChecksInFlight,
            stored?.MaxChecksPerSecond ?? _options.ProducerGroupMaxChecksPerSecond);
        return pace;
    }

    private TimeSpan BlockedWait()
    {
        var wait = _options.IdleScanInterval;
        if (_blocked is { } blocked)
        {
            var untilStalled = _slots.UntilStalled(blocked.Owner, blocked.Host);
            if (untilStalled != Timeout.InfiniteTimeSpan && untilStalled < wait) wait = untilStalled;
        }
        return wait;
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

    private async Task CheckOneAsync(CheckToSend check, ProducerGroup? group, GroupPace pace, string? host, CancellationToken cancellationToken)
    {
        var startedAt = pace.Started();
        try
        {
            var (answer, text, retryAfter) = group?.CheckUrl is { } url
                ? await AskProducerAsync(url, group, check, cancellationToken)
                : (CheckAnswer.Unknown, "no checkUrl", null);
            var outcome = await writer.Submit(new ApplyCheckAnswer(check.Message.Id, check.CheckNumber, answer, text, retryAfter), cancellationToken);
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
            pace.Ended(startedAt);
            _slots.Release(pace.Slots, host);
            // A call of the group ended: the loop may be asleep with checks held for it.
            if (pace.HasHeld) schedule.Signal.Set();
        }
    }

    private async Task<(CheckAnswer, string, TimeSpan?)> AskProducerAsync(string url, ProducerGroup group, CheckToSend check, CancellationToken cancellationToken)
    {
        var m = check.Message;
        var body = JsonSerializer.SerializeToUtf8Bytes(
            new CheckRequestBody(check.TransactionId, m.Id.ToString(), m.Topic, check.ProducerGroup, m.Tag, m.Keys, m.Properties,
                new RawJson(m.Body), check.CheckNumber, Times.ToUtc(m.BornAt)),
            BrokerJsonContext.Default.CheckRequestBody);
        // The message id travels as a header too, so a receiver can verify a v2 signature before parsing the body.
        var signing = CallSigning.For(_brokerSecrets, group.Signing, m.Id, time.GetUtcNow().ToUnixTimeMilliseconds());
        using var activity = BrokerTracing.StartCall("check", m.TraceParent, m.Topic, m.Id, check.ProducerGroup);
        // As with pushes: the producer's own traceparent goes along only when the broker has no span to send instead.
        List<KeyValuePair<string, string>> headers = [new(MessageIdHeader, m.Id.ToString())];
        if (activity is null && m.TraceParent is { } trace) headers.Add(new("traceparent", trace));
        var result = await http.PostJsonAsync(url, body, group.CheckTimeoutMs, headers, signing, MaxAnswerBytes + 1, cancellationToken);
        var answer = result.IsSuccess ? ReadAnswer(result.Body)
            : OutboundErrors.IsUnreachable(result.Error) ? (CheckAnswer.Unreachable, result.Describe(), (TimeSpan?)null)
            : (CheckAnswer.Unknown, result.Describe(), null);
        BrokerTracing.Ended(activity, result.Status, result.IsSuccess ? null : result.Describe());
        activity?.SetTag("halfmsg.check.answer", answer.Item2);
        metrics.Checked(answer.Item1 == CheckAnswer.Unreachable ? "unreachable" : !result.IsSuccess ? "failed" : answer.Item1 switch
        {
            CheckAnswer.Commit => "commit",
            CheckAnswer.Rollback => "rollback",
            _ => "unknown",
        });
        return answer;
    }

    /// <summary>An answer longer than the limit was not read whole, so it is not an answer (fail closed).</summary>
    internal static (CheckAnswer, string, TimeSpan?) ReadAnswer(byte[] body) =>
        body.Length > MaxAnswerBytes ? (CheckAnswer.Unknown, OutboundErrors.InvalidAnswer, null) : CheckAnswerReader.Read(body);

    private static int TimeoutOf(StoredMessage m, Dictionary<string, ProducerGroup?> groups) =>
        m.ProducerGroup is { } name && groups.GetValueOrDefault(name) is { } g ? g.CheckTimeoutMs : DefaultCheckTimeoutMs;
}
