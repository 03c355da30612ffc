using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Hosting;

/// <summary>How the broker process ends: a corrupt journal refuses the start and a failed journal write stops it, both with a non-zero exit code.</summary>
public static class BrokerExit
{
    public const int JournalCorrupt = 2;
    public const int JournalFailed = 3;

    /// <summary>The PostgreSQL provider's connection holding the database lock was lost: another broker may be active now.</summary>
    public const int DatabaseLockLost = 4;

    /// <summary>Runs the broker until it stops; returns the process exit code.</summary>
    /// <remarks>
    /// The app is disposed before the code is returned: the console logger writes from a queue of its
    /// own, and only disposing it makes sure the last line (the reason for a refused start) is out.
    /// </remarks>
    public static int RunUntilStopped(this WebApplication app)
    {
        using (app)
        {
            IMessageStore store;
            try
            {
                // Opening the store replays the journal; corruption refuses the start before anything listens.
                store = app.Services.GetRequiredService<IMessageStore>();
            }
            catch (JournalCorruptException e)
            {
                app.Logger.LogCritical("{Problem}", e.Message);
                return JournalCorrupt;
            }
            // Read before Run: Run disposes the services when it returns.
            var activeLock = app.Services.GetService<HalfMsgBroker.Storage.PostgreSql.ActiveBrokerLock>();
            app.Run();
            if (activeLock is { Lost: true }) return DatabaseLockLost;
            return store is JournaledMessageStore { JournalFailure: not null } ? JournalFailed : 0;
        }
    }
}
