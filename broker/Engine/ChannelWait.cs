using System.Threading.Channels;

namespace HalfMsgBroker.Engine;

/// <summary>
/// Blocks a dedicated thread until its channel has something to read, without spinning: blocking on
/// the <c>ValueTask</c> through a <c>Task</c> spins and calls <c>sched_yield</c> first, which on a
/// small machine takes a core from the request threads that are about to hand in the work.
/// </summary>
internal sealed class ChannelWait<T>(ChannelReader<T> reader)
{
    private readonly ManualResetEventSlim _signal = new(initialState: false, spinCount: 0);
    private Action? _set;

    /// <returns>False once the channel is completed and empty.</returns>
    public bool WaitToRead()
    {
        var pending = reader.WaitToReadAsync();
        if (pending.IsCompleted) return pending.GetAwaiter().GetResult();
        _signal.Reset();
        var awaiter = pending.GetAwaiter();
        awaiter.UnsafeOnCompleted(_set ??= _signal.Set);
        _signal.Wait();
        return awaiter.GetResult();
    }
}
