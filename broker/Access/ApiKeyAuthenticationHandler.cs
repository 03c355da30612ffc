using System.Net;
using System.Text.Encodings.Web;
using HalfMsgBroker.Api;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Access;

/// <summary>
/// Authenticates <c>Authorization: Bearer &lt;key&gt;</c> against <see cref="ApiKeyRegistry"/>, and
/// applies the mode to requests without a key: <c>None</c> lets them in, <c>Protected</c> lets in
/// loopback callers that name a loopback host, <c>ApiKeys</c> lets in nobody.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeyRegistry keys,
    IOptions<AuthOptions> auth) : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, logger, encoder)
{
    private const string BearerPrefix = "Bearer ";
    private static readonly object FailureItem = new();
    private static readonly Caller Anonymous = Caller.Keyless("anonymous");
    private static readonly Caller Loopback = Caller.Keyless("loopback");
    private readonly AuthMode _mode = auth.Value.EffectiveMode;

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization;
        if (header.Count > 0)
        {
            var value = header.ToString();
            if (!value.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
            {
                return Fail(AuthFailure.Malformed);
            }
            var caller = keys.Authenticate(value.AsSpan(BearerPrefix.Length).Trim());
            return caller is null ? Fail(AuthFailure.UnknownKey) : Success(caller);
        }

        return _mode switch
        {
            AuthMode.None => Success(Anonymous),
            AuthMode.Protected when !IsLoopback(Context.Connection.RemoteIpAddress) => NoKey(AuthFailure.NotLoopback),
            AuthMode.Protected when !NamesLoopback(Request.Host.Host) => NoKey(AuthFailure.NotLoopbackHost),
            AuthMode.Protected => Success(Loopback),
            _ => NoKey(AuthFailure.NoKey),
        };
    }

    private Task<AuthenticateResult> Success(Caller caller)
    {
        Context.Features.Set(caller);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(caller.Principal, Scheme.Name)));
    }

    private Task<AuthenticateResult> Fail(AuthFailure why)
    {
        Context.Items[FailureItem] = why;
        return Task.FromResult(AuthenticateResult.Fail(why.ToString()));
    }

    /// <summary>
    /// No key and the mode needs one: "no result" rather than a failure, so anonymous endpoints (health
    /// probes) are not logged as failed sign-ins; a protected endpoint still challenges with the reason.
    /// </summary>
    private Task<AuthenticateResult> NoKey(AuthFailure why)
    {
        Context.Items[FailureItem] = why;
        return Task.FromResult(AuthenticateResult.NoResult());
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var why = Context.Items[FailureItem] as AuthFailure? ?? AuthFailure.NoKey;
        Response.Headers.WWWAuthenticate = "Bearer";
        return Problems.Of(401, "unauthenticated", "Unauthenticated", Describe(why)).ExecuteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        Problems.Of(403, "forbidden", "Forbidden", "This key's role or scopes do not cover this request.").ExecuteAsync(Context);

    private string Describe(AuthFailure why) => why switch
    {
        AuthFailure.Malformed => "The Authorization header must be 'Bearer <key>'.",
        AuthFailure.UnknownKey => "The API key is unknown or was revoked. Ask an admin for a key (POST /v1/api-keys).",
        AuthFailure.NotLoopback =>
            "This broker runs in Protected mode: only callers on the same machine are served without a key. " +
            "Set Broker:Auth:AdminKey (env Broker__Auth__AdminKey, at least 32 characters), create keys with POST /v1/api-keys, " +
            "and send 'Authorization: Bearer <key>'; or set Broker:Auth:Mode=None on a trusted network.",
        AuthFailure.NotLoopbackHost =>
            $"In Protected mode a request without a key must name a loopback host (localhost, 127.0.0.1, [::1]), not '{Request.Host.Host}', " +
            "so that a web page cannot reach the broker through DNS rebinding. Use http://localhost or send an API key.",
        _ => $"This broker requires an API key (Broker:Auth:Mode={_mode}): send 'Authorization: Bearer <key>'.",
    };

    internal static bool IsLoopback(IPAddress? address) => address is not null && IPAddress.IsLoopback(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);

    internal static bool NamesLoopback(string host)
    {
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase)) return true;
        var literal = host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
        return IPAddress.TryParse(literal, out var ip) && IsLoopback(ip) && IsPlainLiteral(literal);
    }

    /// <summary>Only the usual dotted or IPv6 spellings: "127.1" or "2130706433" are not a host name a browser shows a user.</summary>
    private static bool IsPlainLiteral(string literal) => literal.Contains(':') || literal.Count(c => c == '.') == 3;

    internal enum AuthFailure
    {
        NoKey,
        Malformed,
        UnknownKey,
        NotLoopback,
        NotLoopbackHost,
    }
}
