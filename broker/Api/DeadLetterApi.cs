using HalfMsgBroker.Access;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Contracts;
using HalfMsgBroker.Engine;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Api;

/// <summary>A consumer group's dead letters: list, redrive, delete.</summary>
internal static class DeadLetterApi
{
    public static void MapDeadLetterApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/consumer-groups/{group}/dead-letters").WithTags("Dead letters").RequireAuthorization(Policies.ConsumerGroup);
        group.MapGet("/", List).Produces<DeadLetterList>().ProducesProblem(400);
        group.MapPost("/redrive", RedriveAsync).Accepts<RedriveRequest>(isOptional: true, "application/json").Produces<RedriveResponse>().ProducesProblem(400);
        group.MapDelete("/{messageId}", DeleteOneAsync).Produces(204).ProducesProblem(404);
        group.MapDelete("/", DeleteAllAsync).Produces<DeleteResponse>().ProducesProblem(400);
    }

    private static IResult List(string group, IStoreMonitoring store, string? topic = null, int? limit = null, string? after = null)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        if (topic is not null && !Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        var errors = new FieldErrors();
        var take = errors.Range("limit", limit, 1, 1000, 100)!.Value;
        var cursor = errors.Cursor(after);
        if (errors.Any) return errors.ToProblem();

        var page = store.DeadLetters(group, topic, cursor, take);
        var views = page.Items
            .Select(m =>
            {
                var d = m.DeliveryFor(group)!;
                return new DeadLetterView(m.Id.ToString(), m.Topic, m.Tag, m.Keys, d.Attempts, d.LastError,
                    Times.ToUtcOrNull(d.DeadLetteredAt), Times.ToUtc(m.BornAt));
            })
            .ToList();
        return TypedResults.Json(new DeadLetterList(views, page.Next?.ToString()), BrokerJsonContext.Default.DeadLetterList);
    }

    private static async Task<IResult> RedriveAsync(
        string group, HttpContext http, StoreWriter writer, IStoreMonitoring store, AuditLog audit, IOptions<BrokerOptions> options, CancellationToken ct)
    {
        var request = http.Request;
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        var read = await RequestBody.ReadAsync(request, BrokerJsonContext.Default.RedriveRequest, options.Value.MaxMessageBytes, true, ct);
        if (read.Problem is not null) return read.Problem;
        var (reason, badReason) = AuditReason.Read(request, read.Value?.Reason);
        if (badReason is not null) return badReason;

        List<Guid>? ids = null;
        if (read.Value?.MessageIds is { } given)
        {
            ids = new List<Guid>(given.Length);
            for (var i = 0; i < given.Length; i++)
            {
                if (!Guid.TryParse(given[i], out var id)) return Problems.InvalidField($"messageIds[{i}]", "must be a messageId");
                ids.Add(id);
            }
        }
        var all = ids is null;
        // "All" means the dead letters there are now, a page at a time; the writer re-checks each, so one redriven meanwhile is skipped.
        var redriven = ids is null
            ? await DeadLetterPages.ForEachAsync(store, group, null, page => writer.Submit(new RedriveDeadLetters(group, page), ct), ct)
            : await writer.Submit(new RedriveDeadLetters(group, ids), ct);
        audit.Record(http.Caller(), "dead-letters.redrive", group,
            AuditReason.Append(all ? $"all: {redriven} redriven" : $"{redriven} of {ids!.Count} redriven: {Listed(ids)}", reason));
        return TypedResults.Json(new RedriveResponse(redriven), BrokerJsonContext.Default.RedriveResponse);
    }

    /// <summary>The ids an audit line names: all of a short list, the first few of a long one.</summary>
    private static string Listed(List<Guid> ids) =>
        string.Join(',', ids.Take(20)) + (ids.Count > 20 ? $",… ({ids.Count - 20} more)" : "");

    private static async Task<IResult> DeleteOneAsync(string group, string messageId, HttpContext http, StoreWriter writer, AuditLog audit, CancellationToken ct)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        if (!Guid.TryParse(messageId, out var id)) return Problems.InvalidField("messageId", "must be a messageId");
        var (reason, badReason) = AuditReason.Read(http.Request);
        if (badReason is not null) return badReason;
        var deleted = await writer.Submit(new DeleteDeadLetters(group, [id]), ct);
        if (deleted > 0) audit.Record(http.Caller(), "dead-letters.delete", group, AuditReason.Append($"messageId={id}", reason));
        return deleted > 0
            ? TypedResults.NoContent()
            : Problems.NotFound("dead-letter-not-found", $"Consumer group '{group}' has no dead letter for message {messageId}.");
    }

    private static async Task<IResult> DeleteAllAsync(
        string group, HttpContext http, StoreWriter writer, IStoreMonitoring store, AuditLog audit, CancellationToken ct, string? topic = null)
    {
        if (!Names.IsValidName(group)) return Problems.InvalidName("consumerGroup", group);
        if (topic is not null && !Names.IsValidName(topic)) return Problems.InvalidName("topic", topic);
        var (reason, badReason) = AuditReason.Read(http.Request);
        if (badReason is not null) return badReason;
        var deleted = await DeadLetterPages.ForEachAsync(store, group, topic, page => writer.Submit(new DeleteDeadLetters(group, page), ct), ct);
        audit.Record(http.Caller(), "dead-letters.delete", group, AuditReason.Append($"all{(topic is null ? "" : $" of topic {topic}")}: {deleted} deleted", reason));
        return TypedResults.Json(new DeleteResponse(deleted), BrokerJsonContext.Default.DeleteResponse);
    }
}
