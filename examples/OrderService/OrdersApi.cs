using System.Data.Common;
using System.Text.RegularExpressions;
using HalfMsgBroker.Client;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Examples.OrderService;

/// <summary>POST /orders (a local transaction bound to a transactional message) and the read endpoints.</summary>
public static partial class OrdersApi
{
    public const string ProducerGroup = "order-service";
    public const string ConsumerGroup = "order-service";
    public const string Topic = "orders";
    public const string Tag = "created";
    private const int SqliteConstraintViolation = 19;

    public static IEndpointRouteBuilder MapOrdersApi(this IEndpointRouteBuilder app)
    {
        var orders = app.MapGroup("/orders");
        orders.MapPost("/", PlaceOrder);
        orders.MapGet("/", ListOrders);
        orders.MapGet("/{orderId}", GetOrder);
        return app;
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex OrderIdPattern();

    public static async Task<Results<Created<OrderView>, ValidationProblem, Conflict<ProblemDetails>, ProblemHttpResult>> PlaceOrder(
        PlaceOrderRequest request,
        OrdersDb db,
        ITransactionalProducer producer,
        IHalfMsgClient broker,
        DbTransactionLog transactionLog,
        IOptions<OrderServiceOptions> options,
        TimeProvider time,
        ILogger<PlaceOrderLog> logger,
        CancellationToken cancellationToken)
    {
        var errors = Validate(request, options.Value, out var fault);
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var orderId = request.OrderId ?? Guid.CreateVersion7().ToString("N");
        // An order id names one transaction, once: not when the order exists, nor when an earlier attempt
        // with this id was rolled back (its transaction id would be reused).
        bool used;
        try
        {
            used = await db.Orders.AsNoTracking().AnyAsync(o => o.Id == orderId, cancellationToken)
                || await TransactionExistsAsync(broker, $"order-{orderId}", cancellationToken);
        }
        catch (Exception ex) when (IsBrokerUnavailable(ex))
        {
            LogBrokerUnavailable(logger, ex, orderId);
            return BrokerUnavailable(ex);
        }

        if (used)
        {
            return TypedResults.Conflict(new ProblemDetails
            {
                Title = "Order exists",
                Detail = $"Order id '{orderId}' was used before.",
                Extensions = { ["code"] = "order-exists" },
            });
        }

        var order = new Order
        {
            Id = orderId,
            Sku = request.Sku,
            Quantity = request.Quantity,
            Customer = request.Customer ?? "anonymous",
            TransactionId = $"order-{orderId}",
            CreatedAt = time.GetUtcNow().UtcDateTime,
        };
        var message = new OrderCreated(order.Id, order.Sku, order.Quantity, order.Customer);
        var half = new HalfMsgSendOptions { TransactionId = order.TransactionId, Tag = Tag, Keys = [$"order-{orderId}"] };

        TransactionSendResult sent;
        try
        {
            // 1. half message  2. this local transaction  3. commit / rollback (the SDK does 1 and 3).
            sent = await producer.SendInTransactionAsync(
                Topic,
                message,
                async (context, ct) =>
                {
                    await using var transaction = await db.Database.BeginTransactionAsync(ct);
                    // First: the row the check-back looks for. It fails (unique key) when a check-back
                    // already answered "rollback" for this transaction, and the order is not placed.
                    await transactionLog.RecordInLocalTransactionAsync(transaction.GetDbTransaction(), context.TransactionId, ct);
                    db.Orders.Add(order);
                    await db.SaveChangesAsync(ct);

                    if (fault == OrderFault.Rollback)
                    {
                        // A business rule failed inside the local transaction (say, the payment was declined).
                        await transaction.RollbackAsync(ct);
                        return LocalTransactionState.Rollback;
                    }

                    if (fault == OrderFault.HangInLocalTransaction)
                    {
                        await Faults.HangAsync(orderId, "in-local-transaction", options.Value.HangLimit);
                    }

                    await transaction.CommitAsync(ct);

                    switch (fault)
                    {
                        case OrderFault.Crash:
                            Faults.Crash(orderId, "after-local-commit");
                            break;
                        case OrderFault.Hang:
                            await Faults.HangAsync(orderId, "after-local-commit", options.Value.HangLimit);
                            break;
                    }

                    return LocalTransactionState.Commit;
                },
                half,
                cancellationToken);
        }
        catch (Exception ex) when (IsBrokerUnavailable(ex))
        {
            LogBrokerUnavailable(logger, ex, orderId);
            return BrokerUnavailable(ex);
        }
        catch (Exception ex) when (ex is DbException or DbUpdateException)
        {
            LogLocalFailed(logger, ex, orderId);
            if (ex is SqliteException { SqliteErrorCode: SqliteConstraintViolation })
            {
                // The transaction log's primary key: a check-back found no record, wrote its rollback marker
                // and answered rollback before this local transaction got to record itself. The race the
                // transaction log exists for: the order is not placed, and the broker drops the message.
                return TypedResults.Problem(
                    $"A check-back answered rollback for {order.TransactionId} before this order's local transaction recorded itself; the order was not placed.",
                    statusCode: StatusCodes.Status409Conflict,
                    title: "Lost the race to the check-back",
                    extensions: new Dictionary<string, object?> { ["code"] = "lost-to-check-back", ["transactionId"] = order.TransactionId });
            }

            // Otherwise the local transaction may or may not have committed: the check-back tells.
            return TypedResults.Problem(
                $"The order's local transaction failed ({ex.GetType().Name}); the broker's check-back resolves {order.TransactionId}.",
                statusCode: StatusCodes.Status500InternalServerError,
                title: "Local transaction failed",
                extensions: new Dictionary<string, object?> { ["code"] = "local-transaction-failed", ["transactionId"] = order.TransactionId });
        }

        if (sent.LocalState == LocalTransactionState.Rollback)
        {
            return TypedResults.Problem(
                $"Order '{orderId}' was rejected by its local transaction; its message {sent.MessageId} was rolled back.",
                statusCode: StatusCodes.Status422UnprocessableEntity,
                title: "Order rolled back",
                extensions: new Dictionary<string, object?> { ["code"] = "order-rolled-back", ["transactionId"] = sent.TransactionId });
        }

        LogPlaced(logger, orderId, sent.TransactionId, sent.LeftToCheckBack);
        return TypedResults.Created($"/orders/{orderId}", OrderView.From(order));
    }

    public static async Task<Ok<OrderView[]>> ListOrders(OrdersDb db, string? status, CancellationToken cancellationToken)
    {
        var query = db.Orders.AsNoTracking();
        if (Enum.TryParse<OrderStatus>(status, ignoreCase: true, out var wanted))
        {
            query = query.Where(o => o.Status == wanted);
        }

        var orders = await query.OrderBy(o => o.CreatedAt).ToListAsync(cancellationToken);
        return TypedResults.Ok(orders.Select(OrderView.From).ToArray());
    }

    public static async Task<Results<Ok<OrderView>, NotFound>> GetOrder(string orderId, OrdersDb db, CancellationToken cancellationToken)
    {
        var order = await db.Orders.AsNoTracking().FirstOrDefaultAsync(o => o.Id == orderId, cancellationToken);
        return order is null ? TypedResults.NotFound() : TypedResults.Ok(OrderView.From(order));
    }

    private static bool IsBrokerUnavailable(Exception ex) => ex is HalfMsgException { IsTransient: true } or HttpRequestException;

    private static ProblemHttpResult BrokerUnavailable(Exception ex) => TypedResults.Problem(
        $"The broker did not answer: {ex.Message}. Nothing was placed; try again.",
        statusCode: StatusCodes.Status503ServiceUnavailable,
        title: "Broker unavailable",
        extensions: new Dictionary<string, object?> { ["code"] = "broker-unavailable" });

    private static async Task<bool> TransactionExistsAsync(IHalfMsgClient broker, string transactionId, CancellationToken cancellationToken)
    {
        try
        {
            await broker.GetTransactionAsync(transactionId, cancellationToken);
            return true;
        }
        catch (HalfMsgException ex) when (ex.Status == StatusCodes.Status404NotFound)
        {
            return false;
        }
    }

    private static Dictionary<string, string[]> Validate(PlaceOrderRequest request, OrderServiceOptions options, out OrderFault fault)
    {
        var errors = new Dictionary<string, string[]>();
        fault = OrderFault.None;
        if (request.OrderId is not null && !OrderIdPattern().IsMatch(request.OrderId))
        {
            errors["orderId"] = ["1-64 characters of A-Z a-z 0-9 _ -"];
        }

        if (string.IsNullOrWhiteSpace(request.Sku) || request.Sku.Length > 64)
        {
            errors["sku"] = ["required, at most 64 characters"];
        }

        if (request.Quantity is < 1 or > 100_000)
        {
            errors["quantity"] = ["1-100000"];
        }

        if (request.Fault is not null)
        {
            if (!Enum.TryParse(request.Fault, ignoreCase: true, out fault) || !Enum.IsDefined(fault))
            {
                errors["fault"] = ["none, rollback, crash, hang or hangInLocalTransaction"];
            }
            else if (fault != OrderFault.None && !options.AllowFaults)
            {
                errors["fault"] = ["fault injection is off (OrderService:AllowFaults)"];
            }
        }

        return errors;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Order {OrderId} placed (transaction {TransactionId}, left to the check-back: {LeftToCheckBack})")]
    private static partial void LogPlaced(ILogger logger, string orderId, string transactionId, bool leftToCheckBack);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Order {OrderId}: the broker did not answer; nothing placed")]
    private static partial void LogBrokerUnavailable(ILogger logger, Exception exception, string orderId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Order {OrderId}: local transaction failed; left to the check-back")]
    private static partial void LogLocalFailed(ILogger logger, Exception exception, string orderId);
}

/// <summary>Logger category of POST /orders.</summary>
public sealed class PlaceOrderLog;

/// <summary>Answers the broker's check-back from the transaction log (see <see cref="DbTransactionLog"/>).</summary>
public sealed class OrderTransactionChecker(OrdersDb db, DbTransactionLog transactionLog) : ITransactionChecker
{
    public Task<LocalTransactionState> CheckAsync(TransactionCheckRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return transactionLog.CheckAsync(db.Database.GetDbConnection(), request.TransactionId, cancellationToken);
    }
}

/// <summary>Compensation: InventoryService could not serve the order, so it is cancelled (once per message).</summary>
public sealed partial class OrderRejectedHandler(
    OrdersDb db, DbProcessedMessageLog processed, TimeProvider time, ILogger<OrderRejectedHandler> logger) : IHalfMsgHandler<OrderRejected>
{
    public async Task HandleAsync(HalfMsgDelivery<OrderRejected> delivery, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        var rejected = delivery.Body;
        var firstTime = await processed.ProcessOnceAsync(
            db.Database.GetDbConnection(),
            delivery,
            async (_, transaction, ct) =>
            {
                await db.Database.UseTransactionAsync(transaction, ct);
                var order = await db.Orders.FirstOrDefaultAsync(o => o.Id == rejected.OrderId, ct);
                if (order is null)
                {
                    LogUnknownOrder(logger, rejected.OrderId);
                    return;
                }

                if (order.Status == OrderStatus.Placed)
                {
                    order.Status = OrderStatus.Cancelled;
                    order.CancelReason = $"{rejected.Reason}: {rejected.Requested} x {rejected.Sku}";
                    order.CancelledAt = time.GetUtcNow().UtcDateTime;
                    await db.SaveChangesAsync(ct);
                    LogCancelled(logger, order.Id, order.CancelReason);
                }
            },
            cancellationToken);
        if (!firstTime)
        {
            LogDuplicate(logger, delivery.MessageId);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Order {OrderId} cancelled by compensation ({Reason})")]
    private static partial void LogCancelled(ILogger logger, string orderId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Compensation for unknown order {OrderId} ignored")]
    private static partial void LogUnknownOrder(ILogger logger, string orderId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redelivered compensation {MessageId} skipped")]
    private static partial void LogDuplicate(ILogger logger, string messageId);
}

/// <summary>Fault injection for the demo.</summary>
internal static class Faults
{
    public static void Crash(string orderId, string point)
    {
        Announce(orderId, point);
        Environment.FailFast($"OrderService: simulated crash for order {orderId} at {point}");
    }

    public static async Task HangAsync(string orderId, string point, TimeSpan limit)
    {
        Announce(orderId, point);
        // Wait to be killed (the demo sends SIGKILL); crash by ourselves if nobody does.
        await Task.Delay(limit, CancellationToken.None);
        Environment.FailFast($"OrderService: nobody killed the process hanging for order {orderId} at {point}");
    }

    private static void Announce(string orderId, string point)
    {
        // Straight to stdout (not through the buffered logger): the demo waits for this line.
        Console.Out.WriteLine($"FAULT-POINT {orderId} {point} pid={Environment.ProcessId}");
        Console.Out.Flush();
    }
}

/// <summary>Database set-up at start.</summary>
public static class OrdersDatabase
{
    public static WebApplicationBuilder AddOrdersDatabase(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var connectionString = builder.Configuration.GetConnectionString("Orders") ?? "Data Source=orders.db";
        builder.Services.AddDbContext<OrdersDb>(o => o.UseSqlite(connectionString));
        // The SDK's two tables, created at start-up in the orders database (after EnsureCreated below, which
        // creates nothing in a database that already has tables).
        builder.Services.AddHalfMsgTransactionLog(_ => SqliteFactory.Instance.CreateDataSource(connectionString));
        builder.Services.AddHalfMsgProcessedMessageLog(_ => SqliteFactory.Instance.CreateDataSource(connectionString));
        builder.Services.AddSingleton(TimeProvider.System);
        return builder;
    }

    public static async Task InitializeOrdersDatabaseAsync(this IServiceProvider services, CancellationToken cancellationToken = default)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<OrdersDb>();
        await db.Database.EnsureCreatedAsync(cancellationToken);
        await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
    }
}
