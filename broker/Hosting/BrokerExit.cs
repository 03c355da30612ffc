using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// How the broker process ends: a corrupt journal refuses the start and a failed journal write stops it; on
/// PostgreSQL a lost lock (or a successor's newer generation), a commit without an answer and a refused start
/// each stop it; all with a non-zero exit code of their own.
/// </summary>
public static class BrokerExit
{
    public const int JournalCorrupt = 2;
    public const int JournalFailed = 3;

    /// <summary>The PostgreSQL provider's connection holding the database lock was lost: another broker may be active now.</summary>
    public const int DatabaseLockLost = 4;

    /// <summary>The PostgreSQL provider lost its connection while a batch was being committed: the batch's outcome is unknown.</summary>
    public const int DatabaseWriteUnknown = 5;

    /// <summary>The PostgreSQL provider refused to start (login refused, schema newer than this broker, PostgreSQL gone during start).</summary>
    public const int DatabaseRefusedStart = 6;

    /// <summary>An option failed validation: each failure is printed on one line with its value and where it was set.</summary>
    public const int InvalidConfiguration = 7;

    /// <summary>Runs the broker until it stops; returns the process exit code.</summary>
    /// <remarks>
    /// The app is disposed before the code is returned: the console logger writes from a queue of its
    /// own, and only disposing it makes sure the last line (the reason for a refused start) is out.
    /// </remarks>
    public static int RunUntilStopped(this WebApplication app)
    {
        IMessageStore store;
        try
        {
            // Opening the store replays the journal; corruption refuses the start before anything listens.
            store = app.Services.GetRequiredService<IMessageStore>();
        }
        catch (Microsoft.Extensions.Options.OptionsValidationException e) when (IsTheProcess)
        {
            return Refuse(app, e);
        }
        catch (JournalCorruptException e)
        {
            app.Logger.LogCritical("{Problem}", e.Message);
            ((IDisposable)app).Dispose();
            return JournalCorrupt;
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or InvalidOperationException
            && app.Services.GetService<HalfMsgBroker.Storage.PostgreSql.ActiveBrokerLock>() is not null)
        {
            app.Logger.LogCritical("The broker cannot start on PostgreSQL: {Problem}", e.Message);
            ((IDisposable)app).Dispose();
            return DatabaseRefusedStart;
        }
        // Any other failure leaves the app as it is and ends the process with the exception. Under
        // WebApplicationFactory the test's host is this app, starting on another thread: disposing it here raced that
        // start, which then reported an ObjectDisposedException instead of the option at fault.
        using (app)
        {
            // Read before Run: Run disposes the services when it returns.
            var activeLock = app.Services.GetService<HalfMsgBroker.Storage.PostgreSql.ActiveBrokerLock>();
            try
            {
                app.Run();
            }
            catch (Microsoft.Extensions.Options.OptionsValidationException e) when (IsTheProcess)
            {
                // Validated on start (ValidateOnStart): an option no service had read before Run.
                return Refuse(app, e);
            }
            if (activeLock is { Lost: true }) return DatabaseLockLost;
            if (store is HalfMsgBroker.Storage.PostgreSql.PostgreSqlMessageStore { WriteFailure: not null }) return DatabaseWriteUnknown;
            return store is JournaledMessageStore { JournalFailure: not null } ? JournalFailed : 0;
        }
    }

    // Hosted by WebApplicationFactory (a test), the app must run or throw: a Main that returns leaves the test's host unstarted.
    private static bool IsTheProcess => System.Reflection.Assembly.GetEntryAssembly() == typeof(BrokerExit).Assembly;

    // Not through the logger: nothing has started yet, and one plain line per problem is what an operator reads first.
    // The app is not disposed, for the reason above (under WebApplicationFactory the test's host is this app).
    private static int Refuse(WebApplication app, Microsoft.Extensions.Options.OptionsValidationException e)
    {
        foreach (var line in Hosting.InvalidConfiguration.Describe(e, app.Configuration)) Console.Error.WriteLine("The broker cannot start: " + line);
        return InvalidConfiguration;
    }
}
