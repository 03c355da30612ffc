using System.Security.Claims;

namespace HalfMsgBroker.Access;

/// <summary>
/// Who is calling, once authenticated: a key (or the admin key, or a keyless loopback/open-mode
/// caller, which act as admin), with what it may touch. Kept on the request's features so handlers
/// and authorization read it without parsing claims.
/// </summary>
public sealed class Caller
{
    public const string AuthenticationScheme = "Bearer";

    private Caller(string? keyId, string name, Role role, Scope producerGroups, Scope consumerGroups, Scope topics)
    {
        KeyId = keyId;
        Name = name;
        Role = role;
        ProducerGroups = producerGroups;
        ConsumerGroups = consumerGroups;
        Topics = topics;
    }

    /// <summary>The key's id; null for the configured admin key and keyless callers.</summary>
    public string? KeyId { get; }

    /// <summary>Recorded in the audit trail.</summary>
    public string Name { get; }

    public Role Role { get; }
    public Scope ProducerGroups { get; }
    public Scope ConsumerGroups { get; }
    public Scope Topics { get; }

    public bool IsAdmin => Role == Role.Admin;

    /// <summary>An admin that presented a key (the configured admin key or an admin API key), not a keyless caller.</summary>
    public bool IsAdminKey => IsAdmin && !IsKeyless;

    /// <summary>Let in by the mode without a key: loopback in Protected mode, anyone in None mode.</summary>
    public bool IsKeyless { get; private init; }

    public const string AdminKeyName = "admin-key";

    public static Caller FromKey(ApiKey key) => new(key.Id, key.Name, key.Role, key.ProducerGroups, key.ConsumerGroups, key.Topics);

    public static Caller AdminKey { get; } = new(null, AdminKeyName, Role.Admin, Scope.All, Scope.All, Scope.All);

    /// <summary>A caller the mode lets in without a key ("loopback" in Protected mode, "anonymous" in None mode).</summary>
    public static Caller Keyless(string name) => new(null, name, Role.Admin, Scope.All, Scope.All, Scope.All) { IsKeyless = true };

    public bool MayProduceTo(string topic) => IsAdmin || (Role == Role.Producer && Topics.Allows(topic));

    public bool MayUseProducerGroup(string? group) => IsAdmin || (Role == Role.Producer && ProducerGroups.Allows(group));

    public bool MayUseConsumerGroup(string group) => IsAdmin || (Role == Role.Consumer && ConsumerGroups.Allows(group));

    /// <summary>Made once per key, not per request: callers are cached with their keys, and nothing changes a principal.</summary>
    public ClaimsPrincipal Principal => _principal ??= new ClaimsPrincipal(new ClaimsIdentity(
        [new Claim(ClaimTypes.Name, Name), new Claim(ClaimTypes.Role, Role.ToString().ToLowerInvariant())],
        AuthenticationScheme));

    private ClaimsPrincipal? _principal;
}

internal static class CallerHttpContextExtensions
{
    /// <summary>The authenticated caller; the authorization policies make sure every /v1 handler has one.</summary>
    public static Caller Caller(this HttpContext context) =>
        context.Features.Get<Caller>() ?? throw new InvalidOperationException("No authenticated caller: the endpoint lacks an authorization policy.");
}
