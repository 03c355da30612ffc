using System.Text.Json;
using HalfMsgBroker.Client;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Extensions;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps the endpoints the broker calls: the check-back and push subscribers.</summary>
public static class HalfMsgEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps <c>POST {pattern}</c> as the producer group's check endpoint: verifies the signature
    /// (401 problem when bad, stale, or missing while required), calls the registered
    /// <see cref="ITransactionChecker"/> (its <see cref="ITransactionChecker.AnswerAsync"/>) and answers
    /// <c>{"state":"commit|rollback|unknown"}</c>, with <c>"retryAfterSeconds"</c> when the checker asks for it.
    /// </summary>
    /// <param name="endpoints">The route builder.</param>
    /// <param name="pattern">
    /// The route, e.g. <c>/halfmsg/check</c>. A transactional producer registered without a check URL is PUT with
    /// <see cref="HalfMsgClientOptions.PublicBaseAddress"/> followed by this route: write the path here only.
    /// </param>
    /// <returns>The endpoint's convention builder.</returns>
    public static IEndpointConventionBuilder MapHalfMsgCheck(this IEndpointRouteBuilder endpoints, string pattern) =>
        endpoints.MapHalfMsgCheck(
            pattern,
            (request, services, ct) => services.GetRequiredService<ITransactionChecker>().AnswerAsync(request, ct));

    /// <summary>Maps <c>POST {pattern}</c> as a check endpoint answered by a delegate (given the request's services).</summary>
    /// <param name="endpoints">The route builder.</param>
    /// <param name="pattern">The route.</param>
    /// <param name="checker">Answers one check.</param>
    /// <returns>The endpoint's convention builder.</returns>
    public static IEndpointConventionBuilder MapHalfMsgCheck(
        this IEndpointRouteBuilder endpoints,
        string pattern,
        Func<TransactionCheckRequest, IServiceProvider, CancellationToken, Task<LocalTransactionState>> checker)
    {
        ArgumentNullException.ThrowIfNull(checker);
        return endpoints.MapHalfMsgCheck(
            pattern,
            async (request, services, ct) => TransactionCheckResult.FromState(await checker(request, services, ct).ConfigureAwait(false)));
    }

    /// <summary>
    /// Maps <c>POST {pattern}</c> as a check endpoint answered by a delegate that may also say when to
    /// ask again (<see cref="TransactionCheckResult.AskAgainIn"/>).
    /// </summary>
    /// <param name="endpoints">The route builder.</param>
    /// <param name="pattern">The route.</param>
    /// <param name="checker">Answers one check.</param>
    /// <returns>The endpoint's convention builder.</returns>
    public static IEndpointConventionBuilder MapHalfMsgCheck(
        this IEndpointRouteBuilder endpoints,
        string pattern,
        Func<TransactionCheckRequest, IServiceProvider, CancellationToken, Task<TransactionCheckResult>> checker)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        ArgumentNullException.ThrowIfNull(checker);
        return endpoints.MapPost(pattern, async context =>
        {
            var body = await ReadVerifiedBodyAsync(context).ConfigureAwait(false);
            if (body is null)
            {
                return;
            }

            TransactionCheckRequest? request;
            try
            {
                request = JsonSerializer.Deserialize(body, HalfMsgJsonContext.Default.TransactionCheckRequest);
            }
            catch (JsonException ex)
            {
                await WriteProblemAsync(context, StatusCodes.Status400BadRequest, "malformed-json", "The check request is not valid JSON: " + ex.Message).ConfigureAwait(false);
                return;
            }

            if (request is null || string.IsNullOrEmpty(request.TransactionId))
            {
                await WriteProblemAsync(context, StatusCodes.Status400BadRequest, "invalid-field", "transactionId is required.").ConfigureAwait(false);
                return;
            }

            TransactionCheckResult answer;
            try
            {
                answer = await checker(request, context.RequestServices, context.RequestAborted).ConfigureAwait(false);
            }
            catch (Exception ex) when (!context.RequestAborted.IsCancellationRequested)
            {
                Logger(context).LogError(ex, "Transaction checker failed for {TransactionId}; answering 500 (the broker counts it as unknown)", request.TransactionId);
                await WriteProblemAsync(context, StatusCodes.Status500InternalServerError, "checker-failed", "The transaction checker threw " + ex.GetType().Name + ".").ConfigureAwait(false);
                return;
            }

            context.Response.StatusCode = StatusCodes.Status200OK;
            await context.Response.WriteAsJsonAsync(new TransactionCheckResponse(answer.State, answer.RetryAfterSeconds), HalfMsgJsonContext.Default.TransactionCheckResponse, cancellationToken: context.RequestAborted).ConfigureAwait(false);
        }).WithMetadata(new HalfMsgCheckEndpointMetadata());
    }

    /// <summary>
    /// Maps <c>POST {pattern}</c> as a push subscriber: verifies the signature, deserializes the body as
    /// <typeparamref name="T"/>, runs <paramref name="handler"/>; 204 on success, 500 when it throws (the broker retries).
    /// </summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <param name="endpoints">The route builder.</param>
    /// <param name="pattern">The route, e.g. <c>/halfmsg/orders</c>.</param>
    /// <param name="handler">Handles one delivery.</param>
    /// <returns>The endpoint's convention builder.</returns>
    public static IEndpointConventionBuilder MapHalfMsgPush<T>(
        this IEndpointRouteBuilder endpoints,
        string pattern,
        Func<HalfMsgDelivery<T>, CancellationToken, Task> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return endpoints.MapHalfMsgPush<T>(pattern, (delivery, _, ct) => handler(delivery, ct));
    }

    /// <summary>Maps a push subscriber whose handler <typeparamref name="THandler"/> is resolved from the request's services.</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <typeparam name="THandler">The handler (register it in DI).</typeparam>
    /// <param name="endpoints">The route builder.</param>
    /// <param name="pattern">The route.</param>
    /// <returns>The endpoint's convention builder.</returns>
    public static IEndpointConventionBuilder MapHalfMsgPush<T, THandler>(this IEndpointRouteBuilder endpoints, string pattern)
        where THandler : IHalfMsgHandler<T> =>
        endpoints.MapHalfMsgPush<T>(pattern, (delivery, services, ct) => services.GetRequiredService<THandler>().HandleAsync(delivery, ct));

    /// <summary>Maps a push subscriber with a delegate given the request's services.</summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <param name="endpoints">The route builder.</param>
    /// <param name="pattern">The route.</param>
    /// <param name="handler">Handles one delivery.</param>
    /// <returns>The endpoint's convention builder.</returns>
    public static IEndpointConventionBuilder MapHalfMsgPush<T>(
        this IEndpointRouteBuilder endpoints,
        string pattern,
        Func<HalfMsgDelivery<T>, IServiceProvider, CancellationToken, Task> handler)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        ArgumentNullException.ThrowIfNull(handler);
        return endpoints.MapPost(pattern, async context =>
        {
            var body = await ReadVerifiedBodyAsync(context).ConfigureAwait(false);
            if (body is null)
            {
                return;
            }

            var options = context.RequestServices.GetRequiredService<IOptions<HalfMsgClientOptions>>().Value;
            HalfMsgDelivery<T> delivery;
            try
            {
                var push = JsonSerializer.Deserialize(body, HalfMsgJsonContext.Default.PushRequest)
                    ?? throw new JsonException("The push body is null.");
                delivery = new HalfMsgDelivery<T>(
                    push.MessageId,
                    push.Topic,
                    push.Tag,
                    push.Keys ?? [],
                    push.Properties ?? new Dictionary<string, string>(),
                    push.Body.Deserialize<T>(options.JsonSerializerOptions)!,
                    push.Body,
                    push.Attempt,
                    push.BornAt,
                    push.ConsumerGroup) { OrderingKey = push.OrderingKey };
            }
            catch (JsonException ex)
            {
                await WriteProblemAsync(context, StatusCodes.Status422UnprocessableEntity, "unreadable-message", "The pushed message could not be read as " + typeof(T).Name + ": " + ex.Message).ConfigureAwait(false);
                return;
            }

            using var activity = HalfMsgDiagnostics.StartProcess(
                delivery.Topic, delivery.MessageId, delivery.ConsumerGroup, delivery.Attempt, context.Request.Headers.TraceParent.ToString());
            try
            {
                await handler(delivery, context.RequestServices, context.RequestAborted).ConfigureAwait(false);
            }
            catch (Exception ex) when (!context.RequestAborted.IsCancellationRequested)
            {
                HalfMsgDiagnostics.Failed(activity, ex);
                Logger(context).LogWarning(ex, "Push handler failed for message {MessageId} (attempt {Attempt}); answering 500 so the broker retries", delivery.MessageId, delivery.Attempt);
                await WriteProblemAsync(context, StatusCodes.Status500InternalServerError, "handler-failed", "The handler threw " + ex.GetType().Name + ".").ConfigureAwait(false);
                return;
            }

            context.Response.StatusCode = StatusCodes.Status204NoContent;
        });
    }

    /// <summary>Reads the raw body and verifies its signature; writes a 401 problem and returns null when it fails.</summary>
    private static async Task<byte[]?> ReadVerifiedBodyAsync(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<IOptions<HalfMsgClientOptions>>().Value;
        byte[] body;
        using (var buffer = new MemoryStream())
        {
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
            body = buffer.ToArray();
        }

        var signature = context.Request.Headers[HalfMsgHeaders.Signature].ToString();
        var timestamp = context.Request.Headers[HalfMsgHeaders.Timestamp].ToString();
        if (string.IsNullOrEmpty(signature) && !options.SignatureRequired)
        {
            return body;
        }

        var secrets = options.SigningSecrets.Where(s => !string.IsNullOrEmpty(s)).ToList();
        if (secrets.Count == 0)
        {
            if (!options.SignatureRequired)
            {
                return body; // signed, but this app holds no secret and does not require signatures
            }

            // Fail closed: requiring signatures without a secret to check them must not mean "accept all".
            Logger(context).LogError("Refused a broker call to {Path}: RequireSignature is set but no SigningSecrets are configured", context.Request.Path);
            await WriteProblemAsync(
                context,
                StatusCodes.Status401Unauthorized,
                "invalid-signature",
                "This endpoint requires signed calls but has no signing secret configured (HalfMsgClientOptions.SigningSecrets); it refuses every call until one is.",
                "NoSecretConfigured").ConfigureAwait(false);
            return null;
        }

        var time = context.RequestServices.GetService<TimeProvider>() ?? TimeProvider.System;
        var result = HalfMsgSignature.Verify(
            signature,
            timestamp,
            body,
            context.Request.Headers[HalfMsgHeaders.MessageId].ToString(),
            SignedUrl(context.Request, options),
            secrets,
            options.SignatureTolerance,
            time.GetUtcNow(),
            options.AcceptV1Signatures);
        if (result == SignatureVerification.Valid)
        {
            return body;
        }

        var detail = result switch
        {
            SignatureVerification.Missing => "The request carries no HalfMsg-Signature/HalfMsg-Timestamp.",
            SignatureVerification.Stale => "HalfMsg-Timestamp is outside the accepted window.",
            SignatureVerification.Malformed => "HalfMsg-Signature or HalfMsg-Timestamp is malformed.",
            SignatureVerification.V1NotAccepted => "HalfMsg-Signature carries only v1 signatures; this endpoint accepts v2 only (AcceptV1Signatures is false).",
            _ => "HalfMsg-Signature matches no known secret for this URL and message (a v2 signature covers the URL the broker called: see PublicBaseAddress).",
        };
        Logger(context).LogWarning("Rejected an unsigned or badly signed broker call to {Path}: {Reason}", context.Request.Path, result);
        await WriteProblemAsync(context, StatusCodes.Status401Unauthorized, "invalid-signature", detail, result.ToString()).ConfigureAwait(false);
        return null;
    }

    /// <summary>
    /// The URL a v2 signature must cover: what the broker called, i.e. the registered URL. Rebuilt from the
    /// request (<c>{scheme}://{host}{pathBase}{path}{query}</c>), or from <see cref="HalfMsgClientOptions.PublicBaseAddress"/>
    /// (as configured, without a trailing slash) followed by path and query when the app sits behind a proxy.
    /// </summary>
    internal static string SignedUrl(HttpRequest request, HalfMsgClientOptions options) =>
        options.PublicBaseAddress is { } publicBase
            ? publicBase.OriginalString.TrimEnd('/') + request.Path.ToUriComponent() + request.QueryString.ToUriComponent()
            : UriHelper.BuildAbsolute(request.Scheme, request.Host, request.PathBase, request.Path, request.QueryString);

    private static Task WriteProblemAsync(HttpContext context, int status, string code, string detail, string? reason = null)
    {
        var extensions = new Dictionary<string, object?> { ["code"] = code };
        if (reason is not null)
        {
            extensions["reason"] = reason;
        }

        return Results.Problem(
            detail: detail,
            statusCode: status,
            type: "https://halfmsgbroker.dev/problems/" + code,
            extensions: extensions).ExecuteAsync(context);
    }

    private static ILogger Logger(HttpContext context) =>
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("HalfMsgBroker.Client.Endpoints");
}
