using System.Data.Common;
using System.Text.RegularExpressions;
using HalfMsgBroker.Client;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Examples.PaymentService;

/// <summary>
/// POST /payments: the payment row and its message commit in one local transaction (the outbox);
/// the SDK's relay sends the message afterwards. No half message, no check endpoint.
/// </summary>
public static partial class PaymentsApi
{
    public const string Topic = "payments";
    public const string Tag = "received";

    public static IEndpointRouteBuilder MapPaymentsApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/payments", TakePayment);
        app.MapGet("/payments", async (PaymentsDb db, CancellationToken ct) =>
            TypedResults.Ok((await db.Payments.AsNoTracking().OrderBy(p => p.CreatedAt).ToListAsync(ct)).Select(PaymentView.From).ToArray()));
        app.MapGet("/outbox", OutboxState);
        return app;
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex IdPattern();

    public static async Task<Results<Created<PaymentView>, ValidationProblem, Conflict<ProblemDetails>, ProblemHttpResult>> TakePayment(
        TakePaymentRequest request,
        PaymentsDb db,
        IOutbox outbox,
        IOptions<PaymentServiceOptions> options,
        TimeProvider time,
        ILogger<TakePaymentLog> logger,
        CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (request.PaymentId is { } id && !IdPattern().IsMatch(id)) errors["paymentId"] = ["1-64 characters of [A-Za-z0-9_-]"];
        if (request.OrderId is null || !IdPattern().IsMatch(request.OrderId)) errors["orderId"] = ["required: 1-64 characters of [A-Za-z0-9_-]"];
        if (request.Amount <= 0) errors["amount"] = ["must be positive"];
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);

        var payment = new Payment
        {
            Id = request.PaymentId ?? Guid.CreateVersion7().ToString("N"),
            OrderId = request.OrderId!,
            Amount = request.Amount,
            Customer = request.Customer ?? "anonymous",
            OutboxRowId = "",
            CreatedAt = time.GetUtcNow().UtcDateTime,
        };

        await using (var transaction = await db.Database.BeginTransactionAsync(cancellationToken))
        {
            try
            {
                // The message goes into the same transaction as the payment: both commit, or neither.
                payment.OutboxRowId = await outbox.AddAsync(
                    transaction.GetDbTransaction(),
                    Topic,
                    new PaymentReceived(payment.Id, payment.OrderId, payment.Amount, payment.Customer),
                    new OutboxMessageOptions { Tag = Tag, Keys = [$"payment-{payment.Id}"] },
                    cancellationToken);
                db.Payments.Add(payment);
                await db.SaveChangesAsync(cancellationToken);
            }
            catch (DbUpdateException ex) when (ex.InnerException is SqliteException { SqliteErrorCode: 19 })
            {
                return TypedResults.Conflict(new ProblemDetails
                {
                    Title = "Payment exists",
                    Detail = $"Payment id '{payment.Id}' was used before.",
                    Extensions = { ["code"] = "payment-exists" },
                });
            }

            if (payment.Amount > options.Value.MaxAmount)
            {
                // A rule that fails late in the local transaction: the rollback takes the message with it.
                await transaction.RollbackAsync(cancellationToken);
                LogDeclined(logger, payment.Id, payment.Amount);
                return TypedResults.Problem(
                    $"Payment '{payment.Id}' of {payment.Amount} exceeds the limit of {options.Value.MaxAmount}; nothing was recorded or sent.",
                    statusCode: StatusCodes.Status422UnprocessableEntity,
                    title: "Payment declined",
                    extensions: new Dictionary<string, object?> { ["code"] = "payment-declined" });
            }

            await transaction.CommitAsync(cancellationToken);
        }

        outbox.Notify(); // committed: wake this process's relay instead of waiting for its next poll
        LogTaken(logger, payment.Id, payment.OutboxRowId);
        return TypedResults.Created($"/payments/{payment.Id}", PaymentView.From(payment));
    }

    /// <summary>Rows not yet sent (the demo waits for 0), and the oldest one's attempts and last error.</summary>
    private static async Task<Ok<OutboxStateView>> OutboxState(PaymentsDb db, IOutbox outbox, CancellationToken cancellationToken)
    {
        var connection = db.Database.GetDbConnection();
        await db.Database.OpenConnectionAsync(cancellationToken);
        try
        {
            await using var command = connection.CreateCommand();
#pragma warning disable CA2100 // the table name is the outbox's own, a validated identifier
            command.CommandText = $"SELECT COUNT(*), MAX(attempts), MAX(last_error) FROM {outbox.TableName} WHERE sent_at IS NULL";
#pragma warning restore CA2100
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            return TypedResults.Ok(new OutboxStateView(
                reader.GetInt64(0),
                reader.IsDBNull(1) ? 0 : reader.GetInt64(1),
                reader.IsDBNull(2) ? null : reader.GetString(2)));
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }

    public static WebApplicationBuilder AddPaymentsDatabase(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var connectionString = builder.Configuration.GetConnectionString("Payments") ?? "Data Source=payments.db";
        builder.Services.AddDbContext<PaymentsDb>(o => o.UseSqlite(connectionString));
        builder.Services.AddSingleton(TimeProvider.System);
        // The relay's own connections to the same database (it opens and disposes them).
        builder.Services.AddHalfMsgOutbox(_ => new SqliteConnection(connectionString));
        return builder;
    }

    public static async Task InitializePaymentsDatabaseAsync(this IServiceProvider services, CancellationToken cancellationToken = default)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PaymentsDb>();
        await db.Database.EnsureCreatedAsync(cancellationToken);
        await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
        await scope.ServiceProvider.GetRequiredService<IOutbox>().EnsureCreatedAsync(db.Database.GetDbConnection(), cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Payment {PaymentId} recorded with outbox row {RowId}")]
    private static partial void LogTaken(ILogger logger, string paymentId, string rowId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Payment {PaymentId} of {Amount} declined; rolled back with its message")]
    private static partial void LogDeclined(ILogger logger, string paymentId, int amount);
}

/// <summary>Log category of POST /payments.</summary>
public sealed class TakePaymentLog;

public sealed record OutboxStateView(long Pending, long MaxAttempts, string? LastError);
