using HalfMsgBroker.Client;
using HalfMsgBroker.Examples;
using HalfMsgBroker.Examples.PaymentService;

// The third way to produce: the local message table (outbox). A payment and its "payments/received"
// message commit in one SQLite transaction; the SDK's relay sends the message afterwards, with the row
// id as Idempotency-Key, and retries until the broker has it. No half message, no check endpoint.
var builder = WebApplication.CreateBuilder(args);
builder.AddApiKeyFiles(); // HalfMsg:ApiKey: a producer key for topic payments

builder.Services.Configure<PaymentServiceOptions>(builder.Configuration.GetSection(PaymentServiceOptions.Section));
builder.Services.AddHalfMsgClient(o => builder.Configuration.GetSection("HalfMsg").Bind(o));
builder.AddPaymentsDatabase(); // AddHalfMsgOutbox: IOutbox and the relay, options from HalfMsg:Outbox

var app = builder.Build();
await app.Services.InitializePaymentsDatabaseAsync();

app.MapGet("/health", () => TypedResults.Ok(new { status = "ok" }));
app.MapPaymentsApi();

await app.RunAsync();
