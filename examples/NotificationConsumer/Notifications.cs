using System.Collections.Concurrent;
using HalfMsgBroker.Client;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Examples.NotificationConsumer;

public sealed class NotificationOptions
{
    public const string Section = "Notifications";

    /// <summary>Deliveries before the broker discards a notification (the subscription's maxAttempts).</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>Delay before a failed notification is offered again (null: the broker's backoff).</summary>
    public TimeSpan? RetryAfter { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Customers whose mail server never answers (every attempt fails).</summary>
    public IList<string> UnreachableCustomers { get; set; } = [];
}

/// <summary>The body of <c>orders</c>/<c>created</c>.</summary>
public sealed record OrderCreated(string OrderId, string Sku, int Quantity, string Customer);

public sealed record SentNotification(string OrderId, string Customer, string Text, int Attempt, DateTimeOffset SentAt);

/// <summary>Stands in for a mail gateway: remembers what it "sent".</summary>
public sealed class Outbox
{
    private readonly ConcurrentDictionary<string, SentNotification> _sent = new(StringComparer.Ordinal);
    private int _failedAttempts;

    public IReadOnlyCollection<SentNotification> Sent => _sent.Values.OrderBy(n => n.SentAt).ToArray();

    public int FailedAttempts => Volatile.Read(ref _failedAttempts);

    public void Failed() => Interlocked.Increment(ref _failedAttempts);

    /// <summary>At-least-once in, at-most-once out per order: a redelivered notification is not mailed twice.</summary>
    public bool TrySend(SentNotification notification) => _sent.TryAdd(notification.OrderId, notification);
}

public sealed partial class NotifyCustomerHandler(
    Outbox outbox, IOptions<NotificationOptions> options, TimeProvider time, ILogger<NotifyCustomerHandler> logger) : IHalfMsgHandler<OrderCreated>
{
    public Task HandleAsync(HalfMsgDelivery<OrderCreated> delivery, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        var order = delivery.Body;
        if (options.Value.UnreachableCustomers.Contains(order.Customer, StringComparer.OrdinalIgnoreCase))
        {
            outbox.Failed();
            LogUnreachable(logger, order.Customer, order.OrderId, delivery.Attempt, options.Value.MaxAttempts);
            throw new InvalidOperationException($"mail server of '{order.Customer}' does not answer");
        }

        var text = $"Hello {order.Customer}, your order {order.OrderId} for {order.Quantity} x {order.Sku} is placed.";
        if (outbox.TrySend(new SentNotification(order.OrderId, order.Customer, text, delivery.Attempt, time.GetUtcNow())))
        {
            LogSent(logger, order.OrderId, order.Customer);
        }

        return Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Notified {Customer} of order {OrderId}")]
    private static partial void LogSent(ILogger logger, string orderId, string customer);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Customer} unreachable for order {OrderId} (attempt {Attempt} of {MaxAttempts})")]
    private static partial void LogUnreachable(ILogger logger, string customer, string orderId, int attempt, int maxAttempts);
}
