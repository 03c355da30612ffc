using System.Text;
using System.Text.Json;

namespace HalfMsgBroker.Client;

/// <summary>
/// Settings of the HalfMsgBroker client and of the endpoints it maps. Bind them from configuration with
/// <c>services.AddHalfMsgClient(builder.Configuration.GetSection("HalfMsg"))</c>, or set them with
/// <c>services.AddHalfMsgClient(o =&gt; o.BaseAddress = new Uri("http://broker:8080"))</c>. They are
/// validated when the host starts (an <see cref="Microsoft.Extensions.Options.OptionsValidationException"/>
/// that names each wrong setting).
/// </summary>
public sealed record HalfMsgClientOptions
{
    /// <summary>The broker's base address, e.g. <c>http://broker:8080</c>. Required.</summary>
    public Uri? BaseAddress { get; set; }

    /// <summary>
    /// The API key the broker issued to this app (<c>POST /v1/api-keys</c>), sent as
    /// <c>Authorization: Bearer &lt;key&gt;</c> on every call the client makes. Null or empty: no key is sent,
    /// which a broker in <c>Protected</c> mode accepts from loopback only. Read it from configuration
    /// (an environment variable such as <c>HalfMsg__ApiKey</c>, user secrets, a secret store), never from code.
    /// </summary>
    /// <remarks>
    /// The key is never written to a log: <see cref="ToString"/> shows only whether one is set, and the
    /// client's HTTP logging always redacts the <c>Authorization</c> header.
    /// </remarks>
    public string? ApiKey { get; set; }

    /// <summary>
    /// Secrets accepted on signed check-back and push calls: the <c>signingSecret</c> the broker returned
    /// for this app's producer group or subscription (<c>"signing": "auto"</c>), and/or the broker's
    /// <c>Broker:Signing:Secret</c>. List the old and the new one while rotating. Empty: signatures are
    /// not checked, unless <see cref="RequireSignature"/> is true, which then refuses every call.
    /// </summary>
    public IList<string> SigningSecrets { get; set; } = [];

    /// <summary>
    /// Reject check-back and push calls that carry no valid signature. Defaults to true whenever
    /// <see cref="SigningSecrets"/> is not empty. True with no secret fails closed: the host does not
    /// start (an <see cref="Microsoft.Extensions.Options.OptionsValidationException"/>), and the endpoints
    /// refuse every call should the options be used without a host.
    /// </summary>
    public bool? RequireSignature { get; set; }

    /// <summary>
    /// Whether a <c>v1=</c> signature (which binds neither the URL nor the message) is enough. Default
    /// true, for brokers that sign with <c>v1</c> only; set false once the broker signs with <c>v2</c>, so a
    /// call captured at one receiver cannot be replayed to another.
    /// </summary>
    public bool AcceptV1Signatures { get; set; } = true;

    /// <summary>
    /// The URL at which the broker reaches this app's root, e.g. <c>http://orders:8080</c> or, behind a reverse
    /// proxy, <c>https://orders.example.com/svc</c>. It is used twice, so the check URL is written once:
    /// <list type="bullet">
    /// <item>a transactional producer's check URL is this address followed by the route of <c>MapHalfMsgCheck</c>
    /// (null: the first address the server listens on, unless that is a wildcard such as <c>http://[::]:8080</c>);</item>
    /// <item>a <c>v2=</c> signature covers the URL the broker called; the endpoints verify it against this address
    /// followed by the request's path and query (null: <c>{scheme}://{host}{pathBase}{path}{query}</c> of the
    /// request as received).</item>
    /// </list>
    /// </summary>
    public Uri? PublicBaseAddress { get; set; }

    /// <summary>How far a signature's timestamp may be from now (default 5 minutes).</summary>
    public TimeSpan SignatureTolerance { get; set; } = HalfMsgSignature.DefaultTolerance;

    /// <summary>
    /// Timeout of one HTTP attempt. Must exceed the longest long-poll wait (30 s); default 45 s.
    /// </summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(45);

    /// <summary>Timeout of one call including its retries (default 2 minutes).</summary>
    public TimeSpan TotalTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Retries of a retry-safe call after a transient failure (default 3; 0 disables).</summary>
    public int MaxRetryAttempts { get; set; } = 3;

    /// <summary>Base delay between retries (exponential with jitter; default 200 ms).</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Send every call over HTTP/2. With an <c>https</c> <see cref="BaseAddress"/> HTTP/2 is negotiated
    /// during the TLS handshake and falls back to HTTP/1.1; with <c>http</c> it is HTTP/2 with prior
    /// knowledge (h2c), which needs the broker's HTTP/2 endpoint (README, "HTTP/2"). Concurrent calls
    /// then share one connection instead of opening one each, which costs the broker and this process
    /// markedly less CPU per call under load. Default false (HTTP/1.1).
    /// </summary>
    /// <remarks>
    /// One connection carries up to 100 calls at once (the broker's stream limit); more wait, long
    /// polls included. To open further connections instead, give the client a
    /// <see cref="SocketsHttpHandler"/> with <c>EnableMultipleHttp2Connections</c>:
    /// <c>.HttpClient.UseSocketsHttpHandler((h, _) =&gt; h.EnableMultipleHttp2Connections = true)</c>.
    /// A proxy from <c>HTTP_PROXY</c> does not carry h2c: keep the broker in <c>NO_PROXY</c>.
    /// </remarks>
    public bool UseHttp2 { get; set; }

    /// <summary>Options used to turn typed message bodies into JSON and back (default: web defaults, camelCase).</summary>
    public JsonSerializerOptions JsonSerializerOptions { get; set; } = new(JsonSerializerDefaults.Web);

    /// <summary>Whether check-back and push calls must be signed.</summary>
    internal bool SignatureRequired => RequireSignature ?? SigningSecrets.Count > 0;

    /// <summary>Signatures are required but nothing could verify one: every call is refused.</summary>
    internal bool RequiresUnverifiableSignature => RequireSignature == true && !SigningSecrets.Any(s => !string.IsNullOrEmpty(s));

    /// <summary>The key to send, or null when none is configured.</summary>
    internal string? EffectiveApiKey => string.IsNullOrEmpty(ApiKey) ? null : ApiKey;

    /// <summary>
    /// A key must go into a header as it is: visible ASCII, no spaces or line breaks. A key read from a
    /// file often ends in a newline; refusing it at start-up beats a 401 on every call.
    /// </summary>
    internal bool ApiKeyIsWellFormed => EffectiveApiKey is not { } key || key.All(c => c is > ' ' and < (char)0x7F);

    // The record's generated ToString would print ApiKey (and anything else public): list the members
    // here instead, showing only whether a key is set and how many signing secrets there are.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("BaseAddress = ").Append(BaseAddress)
            .Append(", ApiKey = ").Append(EffectiveApiKey is null ? "(none)" : "(set)")
            .Append(", SigningSecrets = (").Append(SigningSecrets.Count).Append(" hidden)")
            .Append(", RequireSignature = ").Append(RequireSignature)
            .Append(", AcceptV1Signatures = ").Append(AcceptV1Signatures)
            .Append(", PublicBaseAddress = ").Append(PublicBaseAddress)
            .Append(", SignatureTolerance = ").Append(SignatureTolerance)
            .Append(", AttemptTimeout = ").Append(AttemptTimeout)
            .Append(", TotalTimeout = ").Append(TotalTimeout)
            .Append(", MaxRetryAttempts = ").Append(MaxRetryAttempts)
            .Append(", RetryDelay = ").Append(RetryDelay)
            .Append(", UseHttp2 = ").Append(UseHttp2)
            .Append(", JsonSerializerOptions = ").Append(JsonSerializerOptions);
        return true;
    }
}
