using HalfMsgBroker.Client;
using HalfMsgBroker.Examples.OrderService;

var builder = WebApplication.CreateBuilder(args);
var options = builder.Configuration.GetSection(OrderServiceOptions.Section).Get<OrderServiceOptions>() ?? new();

builder.AddOrdersDatabase();
builder.Services.Configure<OrderServiceOptions>(builder.Configuration.GetSection(OrderServiceOptions.Section));
builder.Services.AddScoped<OrderRejectedHandler>();
builder.Services.AddHalfMsgClient(o => builder.Configuration.GetSection("HalfMsg").Bind(o))
    .AddTransactionalProducer(OrdersApi.ProducerGroup, new Uri(options.PublicUrl, "/halfmsg/check"))
    .AddTransactionChecker<OrderTransactionChecker>()
    .AddPushSubscription(
        OrdersApi.ConsumerGroup,
        "order-rejected",
        new Uri(options.PublicUrl, "/halfmsg/order-rejected"),
        new SubscriptionRequest(MaxAttempts: 16, OnExhausted: ExhaustedAction.DeadLetter));

var app = builder.Build();
await app.Services.InitializeOrdersDatabaseAsync();

app.MapGet("/health", () => TypedResults.Ok(new { status = "ok" }));
app.MapOrdersApi();
app.MapHalfMsgCheck("/halfmsg/check");
app.MapHalfMsgPush<OrderRejected, OrderRejectedHandler>("/halfmsg/order-rejected");

await app.RunAsync();
