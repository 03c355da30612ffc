using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace HalfMsgBroker.Tests.Support;

/// <summary>
/// A loopback forwarder in front of PostgreSQL that counts the round trips its clients make, so a test can pin how many
/// times a broker's work waits on the network, which no timing shows reliably. A round trip is a turn: the client
/// speaks after the server has answered (what Npgsql prepends to a command, a deferred <c>BEGIN</c> or the pool's reset,
/// goes in the same turn). It also counts simple <c>Query</c> messages (how Npgsql sends <c>BEGIN</c>, <c>COMMIT</c> of
/// an <c>NpgsqlTransaction</c> and its pool reset), read from the message frames.
/// </summary>
public sealed class RoundTripCounter : IAsyncDisposable
{
    private const int SslRequest = 80877103;
    private const int GssEncRequest = 80877104;
    private const int CancelRequest = 80877102;

    private readonly int _target;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _open = [];
    private long _turns;
    private long _queries;

    private RoundTripCounter(int target)
    {
        _target = target;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _ = AcceptLoop();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Turns of all connections: each time a client spoke after the server had answered it.</summary>
    public long RoundTrips => Interlocked.Read(ref _turns);

    /// <summary>Simple <c>Query</c> messages sent by all clients.</summary>
    public long Queries => Interlocked.Read(ref _queries);

    public static RoundTripCounter Start(int targetPort) => new(targetPort);

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient inbound;
            try
            {
                inbound = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            var outbound = new TcpClient();
            try
            {
                await outbound.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                inbound.Dispose();
                outbound.Dispose();
                continue;
            }
            lock (_open)
            {
                _open.Add(inbound);
                _open.Add(outbound);
            }
            var turn = new Turn();
            _ = PumpClient(inbound, outbound, turn);
            _ = PumpServer(outbound, inbound, turn);
        }
    }

    /// <summary>Whether the server spoke since the client last did, on one connection.</summary>
    private sealed class Turn
    {
        public volatile bool ServerSpoke = true;
    }

    /// <summary>Forwards the client's bytes as they come, counting its turns and reading the message frames on the side.</summary>
    private async Task PumpClient(TcpClient from, TcpClient to, Turn turn)
    {
        var parser = new FrameParser(this);
        var buffer = new byte[64 * 1024];
        try
        {
            var source = from.GetStream();
            var sink = to.GetStream();
            int read;
            while ((read = await source.ReadAsync(buffer)) > 0)
            {
                if (turn.ServerSpoke)
                {
                    turn.ServerSpoke = false;
                    Interlocked.Increment(ref _turns);
                }
                parser.Feed(buffer.AsSpan(0, read));
                await sink.WriteAsync(buffer.AsMemory(0, read));
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or InvalidOperationException)
        {
        }
        from.Dispose();
        to.Dispose();
    }

    private static async Task PumpServer(TcpClient from, TcpClient to, Turn turn)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            var source = from.GetStream();
            var sink = to.GetStream();
            int read;
            while ((read = await source.ReadAsync(buffer)) > 0)
            {
                // Before forwarding: the client cannot speak on this answer before it has it.
                turn.ServerSpoke = true;
                await sink.WriteAsync(buffer.AsMemory(0, read));
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or InvalidOperationException)
        {
        }
        from.Dispose();
        to.Dispose();
    }

    /// <summary>
    /// The client side of the protocol: untyped packets (SSL or GSS requests, then the startup message) until the startup
    /// message, then typed messages (<c>type, int32 length including itself, payload</c>).
    /// </summary>
    private sealed class FrameParser(RoundTripCounter counter)
    {
        private readonly List<byte> _pending = [];
        private bool _started;

        public void Feed(ReadOnlySpan<byte> bytes)
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

    public ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_open)
        {
            foreach (var client in _open) client.Dispose();
            _open.Clear();
        }
        _stop.Dispose();
        return ValueTask.CompletedTask;
    }
}
