using System.Globalization;
using HalfMsgBroker.Configuration;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The operator's journal commands, run instead of the broker (with the broker stopped):
/// <c>journal verify</c> reads every segment and reports its frames and any damage, changing nothing
/// (exit 0 clean, 1 damaged); <c>journal salvage</c> applies every intact frame to LiteDB, moves the
/// damaged segments to <c>journal/quarantine/</c> and logs what it skipped, so the broker starts again.
/// Configuration is the broker's own (appsettings.json, environment, <c>--Broker:DataPath=…</c>).
/// </summary>
internal static class JournalCommands
{
    public static bool IsJournalCommand(string[] args) => args.Length > 0 && args[0] == "journal";

    public static int Run(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args.Length > 2 ? args[2..] : [] });
        var options = new BrokerOptions();
        builder.Configuration.GetSection(BrokerOptions.Section).Bind(options);
        if (options.Storage.Provider == StorageProvider.PostgreSql)
        {
            Console.Error.WriteLine("Broker:Storage:Provider=PostgreSql keeps no journal: every change is in PostgreSQL when it is acknowledged. Use PostgreSQL's own tools (pg_dump, amcheck) instead.");
            return 2;
        }
        var dataPath = Path.IsPathRooted(options.DataPath) ? options.DataPath : Path.Combine(builder.Environment.ContentRootPath, options.DataPath);
        var journal = Path.Combine(dataPath, "journal");
        try
        {
            return Run(args.Length > 1 ? args[1] : "", builder, options, dataPath, journal);
        }
        catch (IOException e)
        {
            // Most often broker.lock: a broker is running on this folder.
            Console.Error.WriteLine(e.Message);
            return 2;
        }
    }

    private static int Run(string command, HostApplicationBuilder builder, BrokerOptions options, string dataPath, string journal)
    {
        switch (command)
        {
            case "verify":
                return Verify(dataPath, journal, Console.Out);
            case "salvage":
                using (var host = builder.Build())
                {
                    return Salvage(dataPath, journal, options.Storage, host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("HalfMsgBroker.Journal"));
                }
            default:
                Console.Error.WriteLine("usage: dotnet HalfMsgBroker.Broker.dll journal verify|salvage [--Broker:DataPath=…]");
                return 2;
        }
    }

    public static int Verify(string dataPath, string journal, TextWriter output)
    {
        var segments = JournalScan.Scan(journal);
        long? applied;
        try
        {
            applied = LiteDbMessageStore.ReadAppliedJournalSeq(dataPath);
        }
        catch (Exception e) when (e is IOException or LiteDB.LiteException)
        {
            output.WriteLine($"LiteDB's data file could not be read ({e.Message}); checking the journal alone.");
            applied = null;
        }
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(inv, $"journal {journal}: {segments.Count} segments; LiteDB holds frames up to {(applied is { } a ? a.ToString(inv) : "(no data file)")}"));
        for (var i = 0; i < segments.Count; i++)
        {
            var s = segments[i];
            output.WriteLine(string.Create(inv, $"  {s.Name}: {s.Bytes} bytes, {s.Frames} frames, {s.Changes} changes, sequence {(s.Frames == 0 ? "-" : $"{s.FirstSeq}..{s.LastSeq}")}"));
            foreach (var d in s.Damage)
            {
                var what = JournalScan.IsTornTail(segments, i, d) ? "torn tail (a write cut short by a crash; dropped at start)" : "DAMAGED";
                output.WriteLine(string.Create(inv, $"    {what}: bytes {d.Offset}..{d.Offset + d.Length - 1} ({d.Length} bytes) do not read as frames"));
            }
        }
        var problem = JournalScan.Corruption(segments, applied ?? 0);
        if (problem is null)
        {
            output.WriteLine("clean: the broker will replay this journal.");
            return 0;
        }
        output.WriteLine("damaged: " + problem);
        output.WriteLine("The broker refuses to start on it. `journal salvage` applies every intact frame and moves the damaged segments to journal/quarantine/.");
        return 1;
    }

    public static int Salvage(string dataPath, string journal, StorageOptions storage, ILogger logger)
    {
        var store = new JournaledMessageStore(
            new LiteDbMessageStore(dataPath, storage.Durability, storage.CheckpointPages, notice => logger.LogWarning("{Notice}", notice)),
            journal,
            storage,
            e => logger.LogError(e, "Applying salvaged changes to LiteDB failed"),
            logger,
            salvage: true);
        store.Dispose();
        logger.LogInformation("Salvage done: LiteDB holds every intact frame; the broker can start. Inspect and then delete journal/quarantine/ when done with it.");
        return 0;
    }
}
