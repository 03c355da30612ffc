using HalfMsgBroker.Client;
using HalfMsgBroker.Examples;
using HalfMsgBroker.Examples.InventoryService;

var builder = WebApplication.CreateBuilder(args);
builder.AddApiKeyFiles();
var options = builder.Configuration.GetSection(InventoryOptions.Section).Get<InventoryOptions>() ?? new();

builder.AddInventoryDatabase();
builder.Services.Configure<InventoryOptions>(builder.Configuration.GetSection(InventoryOptions.Section));
builder.Services.AddSingleton<InventoryStats>();
builder.Services.AddScoped<ReserveStockHandler>();
// HalfMsg:ApiKey is the producer key (topic order-rejected, which the handler sends to); the subscription
// is made with the consumer key (consumer group inventory).
builder.Services.AddHalfMsgClient(builder.Configuration.GetSection("HalfMsg"))
    .UseConsumerApiKey(builder.Configuration["Inventory:ConsumerApiKey"])
    .AddPushSubscription(
        ReserveStockHandler.ConsumerGroup,
        "orders",
        new Uri(options.PublicUrl, "/halfmsg/orders"),
        new SubscriptionRequest(TagFilter: "created", MaxAttempts: options.MaxAttempts, OnExhausted: ExhaustedAction.DeadLetter));

var app = builder.Build();
await app.Services.InitializeInventoryDatabaseAsync();

app.MapGet("/health", () => TypedResults.Ok(new { status = "ok" }));
app.MapInventoryApi();
app.MapHalfMsgPush<OrderCreated, ReserveStockHandler>("/halfmsg/orders");

await app.RunAsync();
