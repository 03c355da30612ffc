using HalfMsgBroker.Client;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Examples.InventoryService;

/// <summary>Read endpoints (stock, reservations, rejections, counters) and the demo's failure switch.</summary>
public static class InventoryApi
{
    public static IEndpointRouteBuilder MapInventoryApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/stock", GetStock);
        app.MapGet("/stock/{sku}", GetStockItem);
        app.MapGet("/reservations", GetReservations);
        app.MapGet("/rejections", GetRejections);
        app.MapGet("/stats", (InventoryStats stats) => TypedResults.Ok(stats.Snapshot()));
        app.MapPost("/admin/fail-next-deliveries", (FailNextRequest request, InventoryStats stats) =>
        {
            stats.FailNext(Math.Max(0, request.Count));
            return TypedResults.NoContent();
        });
        return app;
    }

    public static async Task<Ok<StockItem[]>> GetStock(InventoryDb db, CancellationToken cancellationToken) =>
        TypedResults.Ok(await db.Stock.AsNoTracking().OrderBy(s => s.Sku).ToArrayAsync(cancellationToken));

    public static async Task<Results<Ok<StockItem>, NotFound>> GetStockItem(string sku, InventoryDb db, CancellationToken cancellationToken) =>
        await db.Stock.AsNoTracking().FirstOrDefaultAsync(s => s.Sku == sku, cancellationToken) is { } item
            ? TypedResults.Ok(item)
            : TypedResults.NotFound();

    public static async Task<Ok<Reservation[]>> GetReservations(InventoryDb db, CancellationToken cancellationToken) =>
        TypedResults.Ok(await db.Reservations.AsNoTracking().OrderBy(r => r.ReservedAt).ToArrayAsync(cancellationToken));

    public static async Task<Ok<Rejection[]>> GetRejections(InventoryDb db, CancellationToken cancellationToken) =>
        TypedResults.Ok(await db.Rejections.AsNoTracking().OrderBy(r => r.RejectedAt).ToArrayAsync(cancellationToken));
}

public sealed record FailNextRequest(int Count);

/// <summary>
/// Reserves stock for an order exactly once per message: the message id is recorded in the same SQLite
/// transaction as the stock change (<see cref="DbProcessedMessageLog"/>), so a redelivery is skipped.
/// When the stock cannot cover the order — a business failure no retry fixes — it sends the compensation
/// <c>order-rejected</c> instead, which OrderService consumes to cancel the order.
/// </summary>
public sealed partial class ReserveStockHandler(
    InventoryDb db,
    DbProcessedMessageLog processed,
    IHalfMsgClient broker,
    InventoryStats stats,
    TimeProvider time,
    ILogger<ReserveStockHandler> logger) : IHalfMsgHandler<OrderCreated>
{
    public const string ConsumerGroup = "inventory";
    public const string CompensationTopic = "order-rejected";

    public async Task HandleAsync(HalfMsgDelivery<OrderCreated> delivery, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        var failure = stats.NextDelivery();
        if (failure == DeliveryFailure.BeforeProcessing)
        {
            LogFailingOnPurpose(logger, delivery.MessageId, delivery.Attempt, "before processing");
            throw new InvalidOperationException("InventoryService: failing this delivery on purpose (Inventory:FailFirstDeliveries)");
        }

        var order = delivery.Body;
        var firstTime = await processed.ProcessOnceAsync(
            db.Database.GetDbConnection(),
            delivery,
            async (_, transaction, ct) =>
            {
                await db.Database.UseTransactionAsync(transaction, ct);
                // One statement decides: it takes the stock only when enough is there (and a CHECK keeps it >= 0).
                var taken = await db.Database.ExecuteSqlAsync(
                    $"UPDATE stock SET available = available - {order.Quantity} WHERE sku = {order.Sku} AND available >= {order.Quantity}",
                    ct);
                var available = await db.Stock.AsNoTracking().Where(s => s.Sku == order.Sku).Select(s => (int?)s.Available).FirstOrDefaultAsync(ct);
                var now = time.GetUtcNow().UtcDateTime;
                if (taken == 1)
                {
                    db.Reservations.Add(new Reservation
                    {
                        OrderId = order.OrderId, Sku = order.Sku, Quantity = order.Quantity, MessageId = delivery.MessageId, ReservedAt = now,
                    });
                    await db.SaveChangesAsync(ct);
                    stats.Observe(available ?? 0);
                    LogReserved(logger, order.OrderId, order.Quantity, order.Sku, available ?? 0);
                    return;
                }

                // Out of stock. The compensation is sent before this transaction commits, under an idempotency key
                // of the order: if the commit then fails, the redelivery sends "again" and the broker returns the
                // same message, so OrderService hears of it exactly once per order.
                var compensation = await broker.SendAsync(
                    CompensationTopic,
                    new OrderRejected(order.OrderId, order.Sku, order.Quantity, "out-of-stock"),
                    new MessageOptions { Tag = "out-of-stock", Keys = [$"order-{order.OrderId}"], IdempotencyKey = $"order-rejected-{order.OrderId}" },
                    ct);
                db.Rejections.Add(new Rejection
                {
                    OrderId = order.OrderId,
                    Sku = order.Sku,
                    Requested = order.Quantity,
                    AvailableThen = available ?? 0,
                    MessageId = delivery.MessageId,
                    CompensationMessageId = compensation.MessageId,
                    RejectedAt = now,
                });
                await db.SaveChangesAsync(ct);
                LogRejected(logger, order.OrderId, order.Quantity, order.Sku, available ?? 0);
            },
            cancellationToken);

        if (!firstTime)
        {
            stats.Duplicate();
            LogDuplicate(logger, delivery.MessageId, delivery.Attempt);
        }

        if (failure == DeliveryFailure.AfterProcessing)
        {
            LogFailingOnPurpose(logger, delivery.MessageId, delivery.Attempt, "after its transaction committed");
            throw new InvalidOperationException("InventoryService: failing this delivery on purpose after processing it (Inventory:FailFirstDeliveries)");
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Delivery {MessageId} (attempt {Attempt}) fails on purpose {Where}")]
    private static partial void LogFailingOnPurpose(ILogger logger, string messageId, int attempt, string where);

    [LoggerMessage(Level = LogLevel.Information, Message = "Order {OrderId}: reserved {Quantity} x {Sku}, {Available} left")]
    private static partial void LogReserved(ILogger logger, string orderId, int quantity, string sku, int available);

    [LoggerMessage(Level = LogLevel.Information, Message = "Order {OrderId}: {Quantity} x {Sku} rejected ({Available} available); compensation sent")]
    private static partial void LogRejected(ILogger logger, string orderId, int quantity, string sku, int available);

    [LoggerMessage(Level = LogLevel.Information, Message = "Delivery {MessageId} (attempt {Attempt}) was processed before: skipped")]
    private static partial void LogDuplicate(ILogger logger, string messageId, int attempt);
}

/// <summary>Database set-up at start.</summary>
public static class InventoryDatabase
{
    public static WebApplicationBuilder AddInventoryDatabase(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var connectionString = builder.Configuration.GetConnectionString("Inventory") ?? "Data Source=inventory.db";
        builder.Services.AddDbContext<InventoryDb>(o => o.UseSqlite(connectionString));
        // The SDK's table, created at start-up (after EnsureCreated below, which creates nothing in a
        // database that already has tables).
        builder.Services.AddHalfMsgProcessedMessageLog(_ => SqliteFactory.Instance.CreateDataSource(connectionString));
        builder.Services.AddSingleton(TimeProvider.System);
        return builder;
    }

    public static async Task InitializeInventoryDatabaseAsync(this IServiceProvider services, CancellationToken cancellationToken = default)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<InventoryDb>();
        await db.Database.EnsureCreatedAsync(cancellationToken);
        await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
        var options = scope.ServiceProvider.GetRequiredService<IOptions<InventoryOptions>>().Value;
        foreach (var (sku, quantity) in options.InitialStock)
        {
            if (!await db.Stock.AnyAsync(s => s.Sku == sku, cancellationToken))
            {
                db.Stock.Add(new StockItem { Sku = sku, Available = quantity });
            }
        }

        await db.SaveChangesAsync(cancellationToken);
    }
}
