using HalfMsgBroker.Api;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;

namespace HalfMsgBroker.Access;

/// <summary>
/// The authorization policies of the <c>/v1</c> endpoints, one per row of the contract's access
/// table. Each endpoint names one; the fallback policy (admin only) closes any endpoint that
/// forgets to. Checks that need the request body or stored state (a half message's producer
/// group, a transaction's owner, a message's topic) are made in the handler with <see cref="Caller"/>.
/// </summary>
internal static class Policies
{
    /// <summary>Admin keys (and keyless callers the mode lets in) only.</summary>
    public const string Admin = "admin";

    /// <summary>Producer keys whose <c>topics</c> cover the route's <c>{topic}</c>.</summary>
    public const string SendToTopic = "send-to-topic";

    /// <summary>Producer keys whose <c>producerGroups</c> cover the route's <c>{group}</c>.</summary>
    public const string ProducerGroup = "producer-group";

    /// <summary>Any producer key; the handler narrows to the key's producer groups.</summary>
    public const string Transactions = "transactions";

    /// <summary>Any producer key; for batches whose topics are in the body, the handler checks each item's topic (and producer group).</summary>
    public const string Produce = "produce";

    /// <summary>Consumer keys whose <c>consumerGroups</c> cover the route's <c>{group}</c>.</summary>
    public const string ConsumerGroup = "consumer-group";

    /// <summary>Producer and consumer keys; the handler narrows to the messages the key may read.</summary>
    public const string ReadMessages = "read-messages";

    public static void Add(AuthorizationOptions options)
    {
        foreach (var rule in Enum.GetValues<AccessRule>())
        {
            options.AddPolicy(NameOf(rule), p => p.RequireAuthenticatedUser().AddRequirements(new AccessRequirement(rule)));
        }
        options.FallbackPolicy = options.GetPolicy(Admin);
    }

    private static string NameOf(AccessRule rule) => rule switch
    {
        AccessRule.Admin => Admin,
        AccessRule.SendToTopic => SendToTopic,
        AccessRule.ProducerGroup => ProducerGroup,
        AccessRule.Transactions => Transactions,
        AccessRule.Produce => Produce,
        AccessRule.ConsumerGroup => ConsumerGroup,
        _ => ReadMessages,
    };
}

internal enum AccessRule
{
    Admin,
    SendToTopic,
    ProducerGroup,
    Transactions,
    Produce,
    ConsumerGroup,
    ReadMessages,
}

internal sealed record AccessRequirement(AccessRule Rule) : IAuthorizationRequirement;

/// <summary>Decides an <see cref="AccessRequirement"/> from the caller and the route, and says what is missing when it fails.</summary>
internal sealed class AccessHandler : AuthorizationHandler<AccessRequirement>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, AccessRequirement requirement)
    {
        if (context.Resource is not HttpContext http || http.Features.Get<Caller>() is not { } caller) return Task.CompletedTask;
        var missing = caller.IsAdmin ? null : Missing(requirement.Rule, caller, http.Request.RouteValues);
        if (missing is null) context.Succeed(requirement);
        else context.Fail(new AuthorizationFailureReason(this, missing));
        return Task.CompletedTask;
    }

    private static string? Missing(AccessRule rule, Caller caller, RouteValueDictionary route)
    {
        var topic = route["topic"] as string ?? "";
        var group = route["group"] as string ?? "";
        return rule switch
        {
            AccessRule.SendToTopic when !caller.MayProduceTo(topic) => $"sending to topic '{topic}' needs a producer key whose topics include it",
            AccessRule.ProducerGroup when !caller.MayUseProducerGroup(group) => $"producer group '{group}' needs a producer key whose producerGroups include it",
            AccessRule.Transactions when caller.Role != Role.Producer => "transactions need a producer key",
            AccessRule.Produce when caller.Role != Role.Producer => "sending needs a producer key",
            AccessRule.ConsumerGroup when !caller.MayUseConsumerGroup(group) => $"consumer group '{group}' needs a consumer key whose consumerGroups include it",
            AccessRule.ReadMessages when caller.Role is not (Role.Producer or Role.Consumer) => "reading messages needs a producer or consumer key",
            AccessRule.Admin => "this request needs an admin key",
            _ => null,
        };
    }
}

/// <summary>Turns authorization failures into the contract's problem answers: 401 unauthenticated, 403 forbidden naming what is missing.</summary>
internal sealed class ProblemAuthorizationResultHandler : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (!authorizeResult.Forbidden) return _default.HandleAsync(next, context, policy, authorizeResult);
        var reasons = authorizeResult.AuthorizationFailure?.FailureReasons.Select(r => r.Message).Distinct().ToList() ?? [];
        var detail = reasons.Count > 0
            ? $"Forbidden for key '{context.Features.Get<Caller>()?.Name}': {string.Join("; ", reasons)}."
            : "This key's role or scopes do not cover this request.";
        return Problems.Of(403, "forbidden", "Forbidden", detail).ExecuteAsync(context);
    }
}
