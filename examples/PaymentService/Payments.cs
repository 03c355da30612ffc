using Microsoft.EntityFrameworkCore;

namespace HalfMsgBroker.Examples.PaymentService;

/// <summary>A payment as the payment service keeps it in its own database.</summary>
public sealed class Payment
{
    public required string Id { get; init; }
    public required string OrderId { get; init; }
    public required int Amount { get; init; }
    public required string Customer { get; init; }
    /// <summary>The outbox row written with it: also the message's Idempotency-Key.</summary>
    public required string OutboxRowId { get; set; }
    public DateTime CreatedAt { get; init; }
}

public sealed class PaymentsDb(DbContextOptions<PaymentsDb> options) : DbContext(options)
{
    public DbSet<Payment> Payments => Set<Payment>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        var payment = modelBuilder.Entity<Payment>();
        payment.ToTable("payments");
        payment.HasKey(p => p.Id);
    }
}

public sealed class PaymentServiceOptions
{
    public const string Section = "Payments";

    /// <summary>Payments above this amount are declined by the fraud check, which runs last in the local transaction.</summary>
    public int MaxAmount { get; set; } = 1000;
}

/// <summary>POST /payments.</summary>
public sealed record TakePaymentRequest(string? PaymentId, string OrderId, int Amount, string? Customer);

/// <summary>The body of <c>payments</c>/<c>received</c>, as NotificationConsumer reads it.</summary>
public sealed record PaymentReceived(string PaymentId, string OrderId, int Amount, string Customer);

public sealed record PaymentView(string PaymentId, string OrderId, int Amount, string Customer, string OutboxRowId, DateTime CreatedAt)
{
    public static PaymentView From(Payment p) => new(p.Id, p.OrderId, p.Amount, p.Customer, p.OutboxRowId, p.CreatedAt);
}
