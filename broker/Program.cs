using HalfMsgBroker.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddHalfMsgBroker();

var app = builder.Build();
app.MapHalfMsgBroker();
app.Run();

/// <summary>The broker's entry point; public so tests can host it with WebApplicationFactory.</summary>
public partial class Program;
