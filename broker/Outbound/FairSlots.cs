using HalfMsgBroker.Delivery;

namespace HalfMsgBroker.Outbound;

/// <summary>One target's hold on a <see cref="FairSlots"/> pool: a push subscription or a producer group.</summary>
internal sealed class SlotOwner
{
    internal int Held;
    internal bool Waiting;
    internal long MovedAt;

    /// <summary>The owner's own cap (a producer group's maxChecksInFlight); the pool's per-owner cap applies too.</summary>
    internal volatile int Cap = int.MaxValue;

    internal bool IsActive => Held > 0 || Waiting;
}

/// <summary>
/// Outbound request slots shared fairly across targets, so slow targets ("tarpits" that hold a
/// request until it times out) cannot take the slots a healthy target needs. A slot is granted when
/// one is free and
/// <list type="bullet">
/// <item>its owner (subscription or producer group) holds fewer than the per-owner cap (and its own
/// <see cref="SlotOwner.Cap"/>), and its
/// host:port fewer than the per-host cap;</item>
/// <item>while more than the <b>reserve</b> (an eighth of the pool) is free, the owner holds less
/// than its fair share — the pool outside the reserve divided by the owners holding or waiting for
/// slots — or nobody else is waiting: idle capacity is lent out, but not past a waiting owner;</item>
/// <item>within the reserve, the owner holds less than its share of the reserve (at least one slot).
/// Slots already out are never taken back, so when slow targets fill the pool before a healthy one
/// shows up, the reserve is what lets it start at once; shares even out as the slow requests end.</item>
/// </list>
/// The reserve keeps working while fewer targets than it has slots are stuck in it; past that a
/// target waits for the next slot to free. Waiters are served in arrival order, each getting the
/// first slot it is entitled to. Granting and releasing take one short lock and allocate nothing
/// (only a wait does), so a single busy target pays no more than it did for two semaphores.
/// </summary>
internal sealed class FairSlots
{
    /// <summary>A target holding slots that has not finished a request for this long is stalled.</summary>
    public static readonly TimeSpan StallAfter = TimeSpan.FromMilliseconds(500);

    private readonly Lock _gate = new();
    private readonly int _total;
    private readonly int _perOwner;
    private readonly int _perHost;
    private readonly int _reserve;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, SlotOwner> _hosts = new(StringComparer.Ordinal);
    private readonly LinkedList<Waiter> _waiters = new();
    private int _used;
    private int _active;

    public FairSlots(int total, int perOwner, int perHost, TimeProvider time)
    {
        _total = Math.Max(1, total);
        _perOwner = Math.Max(1, perOwner);
        _perHost = Math.Max(1, perHost);
        _reserve = Math.Max(1, _total / 8);
        _time = time;
    }

    /// <summary>Set whenever a slot is released.</summary>
    public WakeSignal Released { get; } = new();

    public int Free
    {
        get { lock (_gate) return _total - _used; }
    }

    /// <summary>The key per-host caps count by: "host:port" of an http(s) URL, or null when it has none.</summary>
    public static string? HostOf(string? url)
    {
        if (url is null || !Uri.TryCreate(url, UriKind.Absolute, out var uri)) return null;
        var host = uri.HostNameType == UriHostNameType.IPv6 ? uri.Host : uri.IdnHost;
        return string.Concat(host, ":", uri.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    public bool TryAcquire(SlotOwner owner, string? host)
    {
        lock (_gate)
        {
            if (!CanTake(owner, host)) return false;
            Take(owner, host);
            return true;
        }
    }

    /// <summary>Whether <see cref="TryAcquire"/> would succeed now (nothing is taken).</summary>
    public bool CanAcquire(SlotOwner owner, string? host)
    {
        lock (_gate) return CanTake(owner, host);
    }

    /// <summary>
    /// At most how many slots the owner could take now, by the caps and free slots alone (the share
    /// rules may grant fewer): how far past a blocked backlog's head is worth reading.
    /// </summary>
    public int Room(SlotOwner owner, string? host)
    {
        lock (_gate)
        {
            var room = Math.Min(_total - _used, CapOf(owner) - owner.Held);
            if (host is not null && _hosts.TryGetValue(host, out var h)) room = Math.Min(room, _perHost - h.Held);
            return Math.Max(0, room);
        }
    }

    /// <summary>Completes once the owner holds one more slot; waiters are served in arrival order.</summary>
    public ValueTask AcquireAsync(SlotOwner owner, string? host, CancellationToken cancellationToken)
    {
        Waiter waiter;
        lock (_gate)
        {
            if (CanTake(owner, host))
            {
                Take(owner, host);
                return ValueTask.CompletedTask;
            }
            cancellationToken.ThrowIfCancellationRequested();
            waiter = new Waiter(this, owner, host);
            waiter.Node = _waiters.AddLast(waiter);
            var was = owner.IsActive;
            owner.Waiting = true;
            Track(owner, was);
            // Registered under the lock, so a grant never sees a half-written registration; a
            // cancellation that runs at once re-enters the lock (Lock is re-entrant).
            waiter.Registration = cancellationToken.UnsafeRegister(
                static (state, token) => ((Waiter)state!).Slots.Cancel((Waiter)state!, token), waiter);
        }
        return new ValueTask(waiter.Completion.Task);
    }

    public void Release(SlotOwner owner, string? host)
    {
        lock (_gate)
        {
            var now = _time.GetTimestamp();
            _used--;
            owner.MovedAt = now;
            var was = owner.IsActive;
            owner.Held--;
            Track(owner, was);
            if (host is not null && _hosts.TryGetValue(host, out var h))
            {
                h.MovedAt = now;
                if (--h.Held == 0) _hosts.Remove(host);
            }
            GrantWaiters();
        }
        Released.Set();
    }

    /// <summary>
    /// True when the owner or its host holds slots and none of their requests ended for
    /// <see cref="StallAfter"/>: more of its work would only wait behind requests that are not moving.
    /// </summary>
    public bool IsStalled(SlotOwner owner, string? host) => UntilStalled(owner, host) == TimeSpan.Zero;

    /// <summary>How long until <see cref="IsStalled"/> turns true if nothing moves; infinite when nothing is held.</summary>
    public TimeSpan UntilStalled(SlotOwner owner, string? host)
    {
        lock (_gate)
        {
            var left = Timeout.InfiniteTimeSpan;
            if (owner.Held > 0) left = StallAfter - _time.GetElapsedTime(owner.MovedAt);
            if (host is not null && _hosts.TryGetValue(host, out var h))
            {
                var hostLeft = StallAfter - _time.GetElapsedTime(h.MovedAt);
                if (left == Timeout.InfiniteTimeSpan || hostLeft < left) left = hostLeft;
            }
            return left == Timeout.InfiniteTimeSpan || left > TimeSpan.Zero ? left : TimeSpan.Zero;
        }
    }

    private bool CanTake(SlotOwner owner, string? host)
    {
        if (_used >= _total || owner.Held >= CapOf(owner)) return false;
        if (host is not null && _hosts.TryGetValue(host, out var h) && h.Held >= _perHost) return false;

        var owners = _active + (owner.IsActive ? 0 : 1);
        var free = _total - _used;
        if (free > _reserve)
        {
            var othersWaiting = _waiters.Count > (owner.Waiting ? 1 : 0);
            return owner.Held < Math.Max(1, (_total - _reserve) / owners) || !othersWaiting;
        }
        return owner.Held < Math.Max(1, _reserve / owners);
    }

    private int CapOf(SlotOwner owner) => Math.Min(_perOwner, Math.Max(1, owner.Cap));

    private void Take(SlotOwner owner, string? host)
    {
        var now = _time.GetTimestamp();
        _used++;
        if (owner.Held == 0) owner.MovedAt = now;
        var was = owner.IsActive;
        owner.Held++;
        Track(owner, was);
        if (host is null) return;
        if (!_hosts.TryGetValue(host, out var h)) _hosts[host] = h = new SlotOwner { MovedAt = now };
        h.Held++;
    }

    /// <summary>Keeps the count of owners holding or waiting for slots right after one of them changed.</summary>
    private void Track(SlotOwner owner, bool wasActive)
    {
        if (wasActive != owner.IsActive) _active += owner.IsActive ? 1 : -1;
    }

    private void GrantWaiters()
    {
        for (var node = _waiters.First; node is not null && _used < _total;)
        {
            var next = node.Next;
            var waiter = node.Value;
            if (CanTake(waiter.Owner, waiter.Host))
            {
                _waiters.Remove(node);
                // Take before clearing Waiting, so the owner stays counted as active throughout.
                Take(waiter.Owner, waiter.Host);
                waiter.Owner.Waiting = false;
                waiter.Registration.Unregister();
                waiter.Completion.TrySetResult();
            }
            node = next;
        }
    }

    private void Cancel(Waiter waiter, CancellationToken token)
    {
        lock (_gate)
        {
            if (waiter.Node?.List is null) return;
            _waiters.Remove(waiter.Node);
            var was = waiter.Owner.IsActive;
            waiter.Owner.Waiting = false;
            Track(waiter.Owner, was);
            // One owner fewer raises everyone's share.
            GrantWaiters();
        }
        waiter.Completion.TrySetCanceled(token);
    }

    private sealed class Waiter(FairSlots slots, SlotOwner owner, string? host)
    {
        public FairSlots Slots { get; } = slots;
        public SlotOwner Owner { get; } = owner;
        public string? Host { get; } = host;
        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public LinkedListNode<Waiter>? Node { get; set; }
        public CancellationTokenRegistration Registration { get; set; }
    }
}
