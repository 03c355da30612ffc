using HalfMsgBroker.Delivery;

namespace HalfMsgBroker.Transactions;

/// <summary>
/// Lets the writer wake the check-back loop when a half message is due before the loop's planned
/// wake-up (e.g. a short checkImmunitySeconds), so the loop can otherwise sleep until the earliest
/// due time in the index.
/// </summary>
internal sealed class CheckSchedule
{
    private long _plannedWake = long.MaxValue;

    public WakeSignal Signal { get; } = new();

    public void Plan(long wakeAt) => Interlocked.Exchange(ref _plannedWake, wakeAt);

    public void Nudge(long dueAt)
    {
        if (dueAt < Interlocked.Read(ref _plannedWake)) Signal.Set();
    }
}
