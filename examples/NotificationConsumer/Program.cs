using HalfMsgBroker.Client;
using HalfMsgBroker.Examples;
using HalfMsgBroker.Examples.NotificationConsumer;

// Best-effort notification: a pull consumer whose subscription gives up after a few tries
// (onExhausted: discard) instead of keeping dead letters. A lost "your order is placed" mail is
// acceptable; an order that waits for it is not.
var builder = WebApplication.CreateBuilder(args);
builder.AddApiKeyFiles(); // HalfMsg:ApiKey: a consumer key for consumer group notifications
var options = builder.Configuration.GetSection(NotificationOptions.Section).Get<NotificationOptions>() ?? new();

builder.Services.Configure<NotificationOptions>(builder.Configuration.GetSection(NotificationOptions.Section));
builder.Services.AddSingleton<Outbox>();
builder.Services.AddSingleton<Receipts>();
builder.Services.AddHalfMsgClient(builder.Configuration.GetSection("HalfMsg"))
    .AddPullConsumer<OrderCreated, NotifyCustomerHandler>("notifications", "orders", pull =>
    {
        pull.MaxConcurrency = 2;
        pull.WaitTime = TimeSpan.FromSeconds(5);
        pull.InvisibleFor = TimeSpan.FromSeconds(30);
        pull.RetryAfter = options.RetryAfter;
        pull.TagFilter = "created";
        pull.MaxAttempts = options.MaxAttempts;
        pull.OnExhausted = ExhaustedAction.Discard;
    })
    // Receipts for PaymentService's payments, which it sends through its outbox (at least once).
    .AddPullConsumer<PaymentReceived, SendReceiptHandler>("notifications", "payments", pull =>
    {
        pull.MaxConcurrency = 2;
        pull.WaitTime = TimeSpan.FromSeconds(5);
        pull.TagFilter = "received";
        pull.MaxAttempts = 16;
        pull.OnExhausted = ExhaustedAction.DeadLetter;
    });

var app = builder.Build();
app.MapGet("/health", () => TypedResults.Ok(new { status = "ok" }));
app.MapGet("/notifications", (Outbox outbox) => TypedResults.Ok(outbox.Sent));
app.MapGet("/stats", (Outbox outbox) => TypedResults.Ok(new { sent = outbox.Sent.Count, failedAttempts = outbox.FailedAttempts }));
app.MapGet("/receipts", (Receipts receipts) => TypedResults.Ok(new { sent = receipts.Sent, duplicates = receipts.Duplicates }));
await app.RunAsync();
