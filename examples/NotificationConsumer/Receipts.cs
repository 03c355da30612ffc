using System.Collections.Concurrent;
using HalfMsgBroker.Client;

namespace HalfMsgBroker.Examples.NotificationConsumer;

/// <summary>The body of <c>payments</c>/<c>received</c> (PaymentService, through its outbox).</summary>
public sealed record PaymentReceived(string PaymentId, string OrderId, int Amount, string Customer);

public sealed record SentReceipt(string PaymentId, string OrderId, string Customer, int Amount, string MessageId, DateTimeOffset SentAt);

/// <summary>
/// Stands in for a receipt mailer. The outbox delivers at least once, so a receipt is keyed by the
/// payment: a redelivery, or a second message for one payment, is counted and not mailed again.
/// </summary>
public sealed class Receipts
{
    private readonly ConcurrentDictionary<string, SentReceipt> _sent = new(StringComparer.Ordinal);
    private int _duplicates;

    public IReadOnlyCollection<SentReceipt> Sent => _sent.Values.OrderBy(r => r.SentAt).ToArray();

    public int Duplicates => Volatile.Read(ref _duplicates);

    public bool TrySend(SentReceipt receipt)
    {
        if (_sent.TryAdd(receipt.PaymentId, receipt))
        {
            return true;
        }

        Interlocked.Increment(ref _duplicates);
        return false;
    }
}

public sealed partial class SendReceiptHandler(Receipts receipts, TimeProvider time, ILogger<SendReceiptHandler> logger) : IHalfMsgHandler<PaymentReceived>
{
    public Task HandleAsync(HalfMsgDelivery<PaymentReceived> delivery, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        var payment = delivery.Body;
        if (receipts.TrySend(new SentReceipt(payment.PaymentId, payment.OrderId, payment.Customer, payment.Amount, delivery.MessageId, time.GetUtcNow())))
        {
            LogSent(logger, payment.PaymentId, payment.Customer);
        }

        return Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Receipt for payment {PaymentId} sent to {Customer}")]
    private static partial void LogSent(ILogger logger, string paymentId, string customer);
}
