using HalfMsgBroker.Access;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Api;

/// <summary>API keys (create, list, revoke) and the audit trail: admin only.</summary>
internal static class AccessApi
{
    public static void MapAccessApi(this IEndpointRouteBuilder app)
    {
        var keys = app.MapGroup("/v1/api-keys").WithTags("Access control").RequireAuthorization(Policies.Admin);
        keys.MapPost("/", CreateAsync).Accepts<ApiKeyRequest>("application/json").Produces<ApiKeyView>(201).ProducesProblem(400).ProducesProblem(429);
        keys.MapGet("/", List).Produces<ApiKeyList>();
        keys.MapDelete("/{id}", Revoke).Produces(204).ProducesProblem(404);

        app.MapGet("/v1/audit", Audit).WithTags("Access control").RequireAuthorization(Policies.Admin)
            .Produces<AuditList>().ProducesProblem(400);
    }

    private static async Task<IResult> CreateAsync(
        HttpContext http, ApiKeyRegistry registry, AuditLog audit, IOptions<BrokerOptions> options, IOptions<QuotaOptions> quotas, CancellationToken ct)
    {
        var read = await RequestBody.ReadAsync(http.Request, BrokerJsonContext.Default.ApiKeyRequest, options.Value.MaxMessageBytes, false, ct);
        if (read.Problem is not null) return read.Problem;
        var dto = read.Value!;

        var errors = new FieldErrors();
        if (!Names.IsValidName(dto.Name)) errors.Add("name", "must be 1-127 characters of A-Z a-z 0-9 _ . -");
        Role? role = dto.Role switch
        {
            "producer" => Role.Producer,
            "consumer" => Role.Consumer,
            "admin" => Role.Admin,
            _ => null,
        };
        if (role is null) errors.Add("role", "must be producer, consumer or admin");
        var producerGroups = ScopeOf(errors, "producerGroups", dto.ProducerGroups, role, Role.Producer);
        var consumerGroups = ScopeOf(errors, "consumerGroups", dto.ConsumerGroups, role, Role.Consumer);
        var topics = ScopeOf(errors, "topics", dto.Topics, role, Role.Producer);
        if (errors.Any) return errors.ToProblem();
        if (registry.Count >= quotas.Value.MaxApiKeys)
        {
            return Problems.QuotaExceeded($"The broker holds {registry.Count} API keys, its limit (Broker:Quotas:MaxApiKeys); revoke unused keys first.");
        }

        var (key, secret) = registry.Create(dto.Name!, role!.Value, producerGroups, consumerGroups, topics);
        audit.Record(http.Caller(), "api-key.create", key.Id,
            $"name={key.Name} role={Lower(key.Role)} producerGroups=[{Join(key.ProducerGroups)}] consumerGroups=[{Join(key.ConsumerGroups)}] topics=[{Join(key.Topics)}]");
        return TypedResults.Json(ToView(key, secret), BrokerJsonContext.Default.ApiKeyView, statusCode: 201);
    }

    private static IResult List(ApiKeyRegistry registry) =>
        TypedResults.Json(new ApiKeyList(registry.List().Select(k => ToView(k, null)).ToList()), BrokerJsonContext.Default.ApiKeyList);

    private static IResult Revoke(string id, HttpContext http, ApiKeyRegistry registry, AuditLog audit)
    {
        var revoked = registry.Revoke(id);
        if (revoked is null) return Problems.NotFound("api-key-not-found", $"No active API key has id '{id}' (GET /v1/api-keys lists them).");
        audit.Record(http.Caller(), "api-key.revoke", id, $"name={revoked.Name}");
        return TypedResults.NoContent();
    }

    private static IResult Audit(IAccessStore store, long? after = null, int? limit = null, string? target = null)
    {
        var errors = new FieldErrors();
        var take = errors.Range("limit", limit, 1, 1000, 100)!.Value;
        if (after is < 0) errors.Add("after", "must be the 'next' cursor of a previous page");
        if (target is { Length: 0 or > 300 }) errors.Add("target", "must be 1-300 characters (a transaction id, a group, group/topic, a key id)");
        if (errors.Any) return errors.ToProblem();
        var page = store.Audit(after ?? 0, take, target);
        var views = page.Select(e => new AuditEntryView(e.Id, Times.ToUtc(e.At), e.Actor, e.Action, e.Target, e.Detail)).ToList();
        var next = page.Count == take ? page[^1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture) : null;
        return TypedResults.Json(new AuditList(views, next), BrokerJsonContext.Default.AuditList);
    }

    private static Scope ScopeOf(FieldErrors errors, string field, string[]? entries, Role? role, Role appliesTo)
    {
        if (entries is null || entries.Length == 0) return Scope.None;
        if (role is { } r && r != appliesTo && r != Role.Admin)
        {
            errors.Add(field, $"applies to {Lower(appliesTo)} keys only; a {Lower(r)} key cannot use it");
            return Scope.None;
        }
        if (entries.Length > 256) errors.Add(field, "at most 256 entries");
        for (var i = 0; i < entries.Length; i++)
        {
            if (!Scope.IsValidEntry(entries[i])) errors.Add($"{field}[{i}]", "must be a name (A-Z a-z 0-9 _ . -) or a prefix of one ending in *");
        }
        return new Scope([.. entries]);
    }

    private static ApiKeyView ToView(ApiKey k, string? secret) => new(
        k.Id, k.Name, Lower(k.Role), k.ProducerGroups.Entries, k.ConsumerGroups.Entries, k.Topics.Entries,
        Times.ToUtc(k.CreatedAt), Times.ToUtcOrNull(k.LastUsedAt ?? 0), secret);

    private static string Lower(Role role) => role.ToString().ToLowerInvariant();

    private static string Join(Scope scope) => string.Join(',', scope.Entries);
}
