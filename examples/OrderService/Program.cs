using HalfMsgBroker.Client;
using HalfMsgBroker.Examples;
using HalfMsgBroker.Examples.OrderService;

var builder = WebApplication.CreateBuilder(args);
builder.AddApiKeyFiles();
builder.AddOrdersDatabase();
builder.Services.Configure<OrderServiceOptions>(builder.Configuration.GetSection(OrderServiceOptions.Section));
builder.Services.AddScoped<OrderRejectedHandler>();
// HalfMsg:ApiKey is the producer key (producer group order-service, topic orders); the subscription to
// order-rejected is made with the consumer key (consumer group order-service). HalfMsg:PublicBaseAddress
// is where the broker reaches this service: the check URL is it + the route of MapHalfMsgCheck below.
var halfMsg = builder.Configuration.GetSection("HalfMsg");
var publicBase = halfMsg.GetValue<Uri>(nameof(HalfMsgClientOptions.PublicBaseAddress)) ?? new Uri("http://localhost:8080");
builder.Services.AddHalfMsgClient(halfMsg)
    .UseConsumerApiKey(builder.Configuration["OrderService:ConsumerApiKey"])
    .AddTransactionalProducer(OrdersApi.ProducerGroup)
    .AddTransactionChecker<OrderTransactionChecker>()
    .AddPushSubscription(
        OrdersApi.ConsumerGroup,
        "order-rejected",
        new Uri(publicBase, "/halfmsg/order-rejected"),
        new SubscriptionRequest(MaxAttempts: 16, OnExhausted: ExhaustedAction.DeadLetter));

var app = builder.Build();
await app.Services.InitializeOrdersDatabaseAsync();

app.MapGet("/health", () => TypedResults.Ok(new { status = "ok" }));
app.MapOrdersApi();
app.MapHalfMsgCheck("/halfmsg/check");
app.MapHalfMsgPush<OrderRejected, OrderRejectedHandler>("/halfmsg/order-rejected");

await app.RunAsync();
