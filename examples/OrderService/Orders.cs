using Microsoft.EntityFrameworkCore;

namespace HalfMsgBroker.Examples.OrderService;

/// <summary>An order as the order service keeps it in its own database.</summary>
public sealed class Order
{
    public required string Id { get; init; }
    public required string Sku { get; init; }
    public required int Quantity { get; init; }
    public required string Customer { get; init; }
    /// <summary>The half message's transaction id: <c>order-{Id}</c>.</summary>
    public required string TransactionId { get; init; }
    public OrderStatus Status { get; set; } = OrderStatus.Placed;
    public string? CancelReason { get; set; }
    public DateTime CreatedAt { get; init; }
    public DateTime? CancelledAt { get; set; }
}

public enum OrderStatus
{
    Placed,
    Cancelled,
}

public sealed class OrdersDb(DbContextOptions<OrdersDb> options) : DbContext(options)
{
    public DbSet<Order> Orders => Set<Order>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        var order = modelBuilder.Entity<Order>();
        order.ToTable("orders");
        order.HasKey(o => o.Id);
        order.HasIndex(o => o.TransactionId).IsUnique();
        order.Property(o => o.Status).HasConversion<string>();
    }
}

/// <summary>The message body of <c>orders</c>/<c>created</c>, as InventoryService and NotificationConsumer read it.</summary>
public sealed record OrderCreated(string OrderId, string Sku, int Quantity, string Customer);

/// <summary>The compensation message InventoryService sends on <c>order-rejected</c>.</summary>
public sealed record OrderRejected(string OrderId, string Sku, int Requested, string Reason);

public sealed record OrderView(
    string OrderId, string Sku, int Quantity, string Customer, string TransactionId, string Status,
    string? CancelReason, DateTime CreatedAt, DateTime? CancelledAt)
{
    public static OrderView From(Order o) => new(
        o.Id, o.Sku, o.Quantity, o.Customer, o.TransactionId,
        o.Status == OrderStatus.Placed ? "placed" : "cancelled", o.CancelReason, o.CreatedAt, o.CancelledAt);
}
