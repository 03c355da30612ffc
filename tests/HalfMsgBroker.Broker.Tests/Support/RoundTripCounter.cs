using System.Buffers.Binary;

namespace HalfMsgBroker.Tests.Support;

/// <summary>
/// A loopback forwarder (<see cref="TcpProxy"/>) in front of PostgreSQL that counts the round trips its clients make, so
/// a test can pin how many times a broker's work waits on the network, which no timing shows reliably. A round trip is
/// a turn: the client speaks after the server has answered (what Npgsql prepends to a command, a deferred <c>BEGIN</c>
/// or the pool's reset, goes in the same turn). It also counts simple <c>Query</c> messages (how Npgsql sends
/// <c>BEGIN</c>, <c>COMMIT</c> of an <c>NpgsqlTransaction</c> and its pool reset), read from the message frames.
/// </summary>
public sealed class RoundTripCounter : ITcpObserver, IAsyncDisposable
{
    private const int SslRequest = 80877103;
    private const int GssEncRequest = 80877104;
    private const int CancelRequest = 80877102;

    private readonly TcpProxy _proxy;
    private long _turns;
    private long _queries;

    private RoundTripCounter(int target) => _proxy = TcpProxy.Start(target, this);

    public static RoundTripCounter Start(int targetPort) => new(targetPort);

    public int Port => _proxy.Port;

    /// <summary>Turns of all connections: each time a client spoke after the server had answered it.</summary>
    public long RoundTrips => Interlocked.Read(ref _turns);

    /// <summary>Simple <c>Query</c> messages sent by all clients.</summary>
    public long Queries => Interlocked.Read(ref _queries);

    object ITcpObserver.Opened() => new Connection();

    void ITcpObserver.ClientSent(object connection, ReadOnlySpan<byte> bytes)
    {
        var c = (Connection)connection;
        if (c.ServerSpoke)
        {
            c.ServerSpoke = false;
            Interlocked.Increment(ref _turns);
        }
        c.Feed(bytes, this);
    }

    void ITcpObserver.ServerSent(object connection) => ((Connection)connection).ServerSpoke = true;

    public ValueTask DisposeAsync() => _proxy.DisposeAsync();

    /// <summary>
    /// One client connection: whether the server spoke since the client last did, and the client's side of the protocol,
    /// untyped packets (SSL or GSS requests, then the startup message) until the startup message, then typed messages
    /// (<c>type, int32 length including itself, payload</c>).
    /// </summary>
    private sealed class Connection
    {
        private readonly List<byte> _pending = [];
        private bool _started;
        public volatile bool ServerSpoke = true;

        public void Feed(ReadOnlySpan<byte> bytes, RoundTripCounter counter)
        {
            _pending.AddRange(bytes);
            while (true)
            {
                var header = _started ? 5 : 4;
                if (_pending.Count < header) return;
                var frame = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_pending);
                var length = BinaryPrimitives.ReadInt32BigEndian(frame[(_started ? 1 : 0)..]);
                var total = (_started ? 1 : 0) + length;
                if (_pending.Count < total) return;
                if (_started)
                {
                    if (frame[0] == (byte)'Q') Interlocked.Increment(ref counter._queries);
                }
                else
                {
                    var code = BinaryPrimitives.ReadInt32BigEndian(frame[4..]);
                    _started = code is not (SslRequest or GssEncRequest or CancelRequest);
                }
                _pending.RemoveRange(0, total);
            }
        }
    }
}
