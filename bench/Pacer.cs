using System.Diagnostics;

namespace HalfMsgBroker.Bench;

/// <summary>
/// With --rate, paces one producer to rate / P messages per second on a fixed schedule (a late
/// message does not shift the next one), so latency is measured at that offered load. The broker's
/// and RabbitMQ's producers use the same one, so their light-load rows compare like with like.
/// </summary>
internal sealed class Pacer(Settings s)
{
    private readonly TimeSpan _interval = s.Rate > 0 ? TimeSpan.FromSeconds(s.Producers / (double)s.Rate) : TimeSpan.Zero;
    private long _next = Stopwatch.GetTimestamp();

    /// <summary>Waits until the next message is due; returns at once when unpaced.</summary>
    public async Task WaitTurnAsync(CancellationToken ct)
    {
        if (_interval <= TimeSpan.Zero) return;
        _next += (long)(_interval.TotalSeconds * Stopwatch.Frequency);
        var ahead = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), _next);
        if (ahead > TimeSpan.Zero) await Task.Delay(ahead, ct);
    }
}
