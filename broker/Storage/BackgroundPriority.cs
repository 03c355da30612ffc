using System.Runtime.InteropServices;

namespace HalfMsgBroker.Storage;

/// <summary>
/// Lowers the CPU priority of the thread that copies journaled changes into LiteDB. Its work is off the request path
/// (a 2xx waits for the journal, not for LiteDB) but heavy: LiteDB's inserts are about a quarter of the broker's CPU
/// under workload 1, in bursts every <c>Broker:Storage:ApplyDelay</c>. At nice 10 the scheduler gives a request's threads a core first
/// whenever both want one; the applier still gets every idle moment, and if it falls behind,
/// <c>MaxUnappliedChanges</c> makes writes wait for it. How soon a request thread that wakes up gets the applier's
/// core is <see cref="ApplierYield"/>'s part. Workload 1 at full load on two cores, two alternating pairs of
/// builds: e2e p99 5.1 / 5.1 ms against 5.7 / 5.3 (commits awaited) and 6.7 / 6.6 against 7.8 / 7.4 (one-way end), the
/// same throughput. Linux only (.NET's <see cref="Thread.Priority"/> does nothing there); elsewhere, and where the call
/// is refused, the thread keeps its priority.
/// </summary>
internal static class BackgroundPriority
{
    /// <summary>The nice value the applier runs at (0 is normal, 19 the lowest).</summary>
    public const int ApplierNice = 10;

    /// <summary>Lowers the calling thread's priority to <see cref="ApplierNice"/>; false when it could not (not Linux, or refused).</summary>
    public static bool LowerCurrentThread()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            return Native.SetPriority(0 /* PRIO_PROCESS: with a thread id, that thread */, Native.GetTid(), ApplierNice) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    private static class Native
    {
        [DllImport("libc", EntryPoint = "gettid")]
        public static extern int GetTid();

        [DllImport("libc", EntryPoint = "setpriority", SetLastError = true)]
        public static extern int SetPriority(int which, int who, int priority);
    }
}
