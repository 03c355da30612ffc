using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Examples.InventoryService;

public sealed class StockItem
{
    public required string Sku { get; init; }
    public int Available { get; set; }
}

/// <summary>Stock held for one order. The primary key is the order id: one reservation per order, ever.</summary>
public sealed class Reservation
{
    public required string OrderId { get; init; }
    public required string Sku { get; init; }
    public required int Quantity { get; init; }
    public required string MessageId { get; init; }
    public DateTime ReservedAt { get; init; }
}

/// <summary>An order that could not be served: the compensation <c>order-rejected</c> was sent for it.</summary>
public sealed class Rejection
{
    public required string OrderId { get; init; }
    public required string Sku { get; init; }
    public required int Requested { get; init; }
    public required int AvailableThen { get; init; }
    public required string MessageId { get; init; }
    public string? CompensationMessageId { get; set; }
    public DateTime RejectedAt { get; init; }
}

public sealed class InventoryDb(DbContextOptions<InventoryDb> options) : DbContext(options)
{
    public DbSet<StockItem> Stock => Set<StockItem>();
    public DbSet<Reservation> Reservations => Set<Reservation>();
    public DbSet<Rejection> Rejections => Set<Rejection>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<StockItem>(e =>
        {
            e.ToTable("stock", t => t.HasCheckConstraint("ck_stock_available", "available >= 0"));
            e.HasKey(s => s.Sku);
            e.Property(s => s.Sku).HasColumnName("sku");
            e.Property(s => s.Available).HasColumnName("available");
        });
        modelBuilder.Entity<Reservation>(e =>
        {
            e.ToTable("reservations");
            e.HasKey(r => r.OrderId);
        });
        modelBuilder.Entity<Rejection>(e =>
        {
            e.ToTable("rejections");
            e.HasKey(r => r.OrderId);
        });
    }
}

/// <summary>The body of <c>orders</c>/<c>created</c> (OrderService's <c>OrderCreated</c>).</summary>
public sealed record OrderCreated(string OrderId, string Sku, int Quantity, string Customer);

/// <summary>The compensation body on <c>order-rejected</c>. Deterministic per order, so a resend with the
/// same idempotency key is recognised by the broker as the same message.</summary>
public sealed record OrderRejected(string OrderId, string Sku, int Requested, string Reason);

public sealed class InventoryOptions
{
    public const string Section = "Inventory";

    /// <summary>Base URL at which the broker reaches this service (push deliveries).</summary>
    public Uri PublicUrl { get; set; } = new("http://localhost:8080");

    /// <summary>Stock to create at start-up for SKUs that do not exist yet.</summary>
    public Dictionary<string, int> InitialStock { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Answer the first N push deliveries with a 500, to show the broker's retries: alternately before
    /// the stock is touched and after the reservation committed (a lost answer, so a duplicate follows).</summary>
    public int FailFirstDeliveries { get; set; }

    /// <summary>Delivery attempts before a message goes to the dead-letter queue.</summary>
    public int MaxAttempts { get; set; } = 16;
}

public enum DeliveryFailure
{
    None,
    BeforeProcessing,
    AfterProcessing,
}

/// <summary>In-memory counters for the demo (GET /stats).</summary>
public sealed class InventoryStats(IOptions<InventoryOptions> options)
{
    private int _failuresLeft = options.Value.FailFirstDeliveries;
    private int _received;
    private int _failedOnPurpose;
    private int _duplicates;
    private int _lowest = int.MaxValue;

    /// <summary>
    /// Whether to fail this delivery on purpose, and where: the first N deliveries fail, alternately before
    /// the handler does anything (a plain retry) and after its transaction committed (as if the answer got
    /// lost: the redelivery must be skipped by the idempotency helper).
    /// </summary>
    public DeliveryFailure NextDelivery()
    {
        Interlocked.Increment(ref _received);
        var left = Interlocked.Decrement(ref _failuresLeft);
        if (left < 0)
        {
            return DeliveryFailure.None;
        }

        Interlocked.Increment(ref _failedOnPurpose);
        return left % 2 == 0 ? DeliveryFailure.AfterProcessing : DeliveryFailure.BeforeProcessing;
    }

    public void FailNext(int count) => Interlocked.Exchange(ref _failuresLeft, count);

    public void Duplicate() => Interlocked.Increment(ref _duplicates);

    public void Observe(int available)
    {
        int seen;
        do
        {
            seen = Volatile.Read(ref _lowest);
            if (available >= seen)
            {
                return;
            }
        }
        while (Interlocked.CompareExchange(ref _lowest, available, seen) != seen);
    }

    public object Snapshot()
    {
        var lowest = Volatile.Read(ref _lowest);
        return new
        {
            deliveriesReceived = Volatile.Read(ref _received),
            deliveriesFailedOnPurpose = Volatile.Read(ref _failedOnPurpose),
            duplicatesSkipped = Volatile.Read(ref _duplicates),
            lowestAvailable = lowest == int.MaxValue ? (int?)null : lowest,
        };
    }
}
