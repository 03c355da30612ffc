using System.Globalization;
using LiteDB;
using LiteDB.Engine;

namespace HalfMsgBroker.Storage;

/// <summary>
/// Opens <c>broker.db</c> with exact (ordinal) string comparison. "Order-1" and "order-1" are two
/// transaction ids; LiteDB's default collation ignores case, which made such ids collide in the
/// unique index (and compares by culture, which costs more on every index step). The collation is
/// fixed when a file is created, and LiteDB refuses to open a file with another one, so an older
/// broker's file is opened with its own and rebuilt once.
/// </summary>
internal static class CollationMigration
{
    public static readonly Collation Ordinal = new(CultureInfo.InvariantCulture.LCID, CompareOptions.Ordinal);

    public static LiteDatabase Open(string dataPath, string file, Action<string>? notice)
    {
        var exists = new FileInfo(file) is { Exists: true, Length: > 0 };
        if (!exists) RefuseIfInterrupted(dataPath, file);
        var db = new LiteDatabase(new ConnectionString
        {
            Filename = file,
            Connection = ConnectionType.Direct,
            Collation = exists ? null : Ordinal,
        });
        try
        {
            if (db.Collation.SortOptions != CompareOptions.Ordinal) Rebuild(db, dataPath, file, notice);
            return db;
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    /// <summary>
    /// LiteDB's rebuild copies the file into <c>broker-temp.db</c>, then renames the log and the file
    /// to <c>-backup</c> and the copy into place. A crash between those renames leaves no
    /// <c>broker.db</c>; starting then would create an empty database beside the real one.
    /// </summary>
    private static void RefuseIfInterrupted(string dataPath, string file)
    {
        var stem = Path.GetFileNameWithoutExtension(file);
        var leftovers = Directory.GetFiles(dataPath, stem + "-backup*")
            .Concat(Directory.GetFiles(dataPath, stem + "-temp*"))
            .Select(Path.GetFileName)
            .ToList();
        if (leftovers.Count == 0) return;
        throw new InvalidOperationException(
            $"{file} is missing but {string.Join(", ", leftovers)} are there: a rebuild of the data file was interrupted. "
            + $"Rename {stem}-backup.db to {stem}.db (and {stem}-log-backup.db, if there, to {stem}-log.db), remove the {stem}-temp files, "
            + "and start the broker again; it then rebuilds the file anew.");
    }

    private static void Rebuild(LiteDatabase db, string dataPath, string file, Action<string>? notice)
    {
        var was = db.Collation.ToString();
        // Copies left by an attempt that did not finish; the rebuild would otherwise add another beside them.
        var stem = Path.GetFileNameWithoutExtension(file);
        foreach (var stale in Directory.GetFiles(dataPath, stem + "-temp*")) File.Delete(stale);
        notice?.Invoke($"{file} compares keys with collation {was}; rebuilding it once with {Ordinal} (case-sensitive keys). "
            + "This reads and rewrites every document: with millions of messages it takes minutes, and the HTTP port opens only after it.");
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        // The rebuild moves the log aside unread if LiteDB's close skips its checkpoint (CheckpointPages 0).
        db.Checkpoint();
        db.Rebuild(new RebuildOptions { Collation = Ordinal });
        DirectorySync.Flush(dataPath); // the renames must survive a power loss
        var unreadable = db.CollectionExists("_rebuild_errors") ? db.GetCollection("_rebuild_errors").Count() : 0;
        notice?.Invoke($"Rebuilt {file} in {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s; the previous file is kept beside it as {stem}-backup.db."
            + (unreadable > 0 ? $" {unreadable} unreadable pages were skipped: the collection _rebuild_errors lists them, and the backup still holds them." : ""));
    }
}
