namespace HalfMsgBroker.Engine;

/// <summary>
/// Message ids: UUIDv7 (Unix milliseconds first), with the 12 bits after the version used as a
/// counter within one millisecond (RFC 9562, method 1). Plain v7 ids made in the same millisecond
/// sort at random, and the broker lists and recounts by id order; one writer thread makes them all,
/// so a counter suffices. Past 4,096 ids in a millisecond the timestamp moves on by one.
/// </summary>
internal sealed class MessageIds
{
    private long _lastMs = -1;
    private int _counter;

    public Guid Next(long nowMs)
    {
        var ms = Math.Max(nowMs, _lastMs);
        if (ms == _lastMs)
        {
            if (++_counter > 0xFFF)
            {
                ms++;
                _counter = 0;
            }
        }
        else
        {
            _counter = 0;
        }
        _lastMs = ms;

        Span<byte> bytes = stackalloc byte[16];
        Guid.CreateVersion7(DateTimeOffset.FromUnixTimeMilliseconds(ms)).TryWriteBytes(bytes, bigEndian: true, out _);
        bytes[6] = (byte)(0x70 | (_counter >> 8));
        bytes[7] = (byte)_counter;
        return new Guid(bytes, bigEndian: true);
    }
}
