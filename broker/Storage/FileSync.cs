using System.Runtime.InteropServices;

namespace HalfMsgBroker.Storage;

/// <summary>fdatasync for a file .NET has open (.NET's own flush is fsync).</summary>
internal static class FileSync
{
    [DllImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    public static extern int Fdatasync(Microsoft.Win32.SafeHandles.SafeFileHandle fd);
}
