namespace HalfMsgBroker.DiskSpace;

/// <summary>Reads how many bytes an unprivileged process may still write on the filesystem holding a folder.</summary>
internal interface IFreeSpace
{
    long AvailableBytes(string folder);
}

/// <summary>
/// <see cref="DriveInfo"/>: on Linux and macOS a <c>statvfs</c> of the folder itself (blocks available to
/// non-root × block size), so it needs no mount point; on Windows the folder's volume root.
/// </summary>
internal sealed class DriveFreeSpace : IFreeSpace
{
    public long AvailableBytes(string folder)
    {
        var full = Path.GetFullPath(folder);
        return new DriveInfo(OperatingSystem.IsWindows() ? Path.GetPathRoot(full)! : full).AvailableFreeSpace;
    }
}
