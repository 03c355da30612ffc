using HalfMsgBroker.Client;
using HalfMsgBroker.Examples;
using HalfMsgBroker.Examples.OrderService;

var builder = WebApplication.CreateBuilder(args);
builder.AddApiKeyFiles();
var options = builder.Configuration.GetSection(OrderServiceOptions.Section).Get<OrderServiceOptions>() ?? new();

builder.AddOrdersDatabase();
builder.Services.Configure<OrderServiceOptions>(builder.Configuration.GetSection(OrderServiceOptions.Section));
builder.Services.AddScoped<OrderRejectedHandler>();
// HalfMsg:ApiKey is the producer key (producer group order-service, topic orders); the subscription to
// order-rejected is made with the consumer key (consumer group order-service).
builder.Services.AddHalfMsgClient(o => builder.Configuration.GetSection("HalfMsg").Bind(o))
    .UseConsumerApiKey(builder.Configuration["OrderService:ConsumerApiKey"])
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
