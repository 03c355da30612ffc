namespace HalfMsgBroker.Access;

/// <summary>Who may call the broker (<c>Broker:Auth</c>).</summary>
public enum AuthMode
{
    /// <summary>Loopback callers need no key; everyone else needs one. The default without an admin key.</summary>
    Protected,

    /// <summary>Every <c>/v1</c> request carries <c>Authorization: Bearer &lt;key&gt;</c>. The default once an admin key is set.</summary>
    ApiKeys,

    /// <summary>Open to every caller, for a trusted network; logged as a warning at start.</summary>
    None,
}

/// <summary>The <c>Broker:Auth</c> configuration section.</summary>
public sealed class AuthOptions
{
    public const int MinAdminKeyLength = 32;

    /// <summary>Absent: <see cref="AuthMode.ApiKeys"/> when <see cref="AdminKey"/> is set, else <see cref="AuthMode.Protected"/>.</summary>
    public AuthMode? Mode { get; set; }

    /// <summary>The bootstrap admin key (at least 32 characters), from configuration or <c>Broker__Auth__AdminKey</c>.</summary>
    public string? AdminKey { get; set; }

    /// <summary>How often the last-used times of keys are written (coalesced, not one write per request).</summary>
    public TimeSpan LastUsedFlushInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long audit entries are kept.</summary>
    public TimeSpan AuditRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>
    /// Many active brokers: how many times a second unknown keys may have this broker read the keys again (one may have
    /// been created through another broker a moment ago; <see cref="UnknownKeyReads"/>).
    /// </summary>
    public int UnknownKeyReadsPerSecond { get; set; } = 10;

    public AuthMode EffectiveMode => Mode ?? (string.IsNullOrEmpty(AdminKey) ? AuthMode.Protected : AuthMode.ApiKeys);
}

/// <summary>The <c>Broker:RateLimits</c> configuration section.</summary>
public sealed class RateLimitOptions
{
    /// <summary>Requests per second per key (per client address without a key); absent: unlimited.</summary>
    public double? RequestsPerSecond { get; set; }

    /// <summary>Requests a key may make at once above the steady rate; absent: one second's worth.</summary>
    public int? Burst { get; set; }

    /// <summary>Receives (long polls) one key may have open at once.</summary>
    public int MaxConcurrentLongPolls { get; set; } = 64;
}

/// <summary>The <c>Broker:Quotas</c> configuration section: how many of each thing the broker will hold.</summary>
public sealed class QuotaOptions
{
    public int MaxTopics { get; set; } = 10_000;
    public int MaxSubscriptions { get; set; } = 10_000;
    public int MaxProducerGroups { get; set; } = 10_000;
    public int MaxApiKeys { get; set; } = 10_000;
}
