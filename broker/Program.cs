using HalfMsgBroker.Hosting;
using HalfMsgBroker.Storage;

if (JournalCommands.IsJournalCommand(args)) return JournalCommands.Run(args);

var builder = SettingsFiles.CreateBuilder(args);
builder.AddHalfMsgBroker();

var app = builder.Build();
app.MapHalfMsgBroker();
return app.RunUntilStopped();

/// <summary>The broker's entry point; public so tests can host it with WebApplicationFactory.</summary>
public partial class Program;
