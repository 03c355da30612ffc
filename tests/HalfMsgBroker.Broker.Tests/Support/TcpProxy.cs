using System.Net;
using System.Net.Sockets;

namespace HalfMsgBroker.Tests.Support;

/// <summary>
/// A loopback TCP forwarder in front of a server (PostgreSQL), so a test can make the server unreachable
/// without stopping it: <see cref="Cut"/> drops every connection and refuses new ones (the port is closed),
/// <see cref="Restore"/> listens on the same port again. An <see cref="ITcpObserver"/> sees the bytes as they pass.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly int _target;
    private readonly ITcpObserver? _observer;
    private readonly List<TcpClient> _open = [];
    private TcpListener? _listener;
    private CancellationTokenSource _accepting = new();

    private TcpProxy(int target, int port, ITcpObserver? observer)
    {
        _target = target;
        Port = port;
        _observer = observer;
    }

    public int Port { get; }

    public static TcpProxy Start(int targetPort, ITcpObserver? observer = null)
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var proxy = new TcpProxy(targetPort, port, observer);
        proxy.Restore();
        return proxy;
    }

    public void Restore()
    {
        _accepting = new CancellationTokenSource();
        _listener = new TcpListener(IPAddress.Loopback, Port);
        _listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Start();
        _ = AcceptLoop(_listener, _accepting.Token);
    }

    public void Cut()
    {
        _accepting.Cancel();
        _listener?.Stop();
        lock (_open)
        {
            foreach (var client in _open) client.Dispose();
            _open.Clear();
        }
    }

    private async Task AcceptLoop(TcpListener listener, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient inbound;
            try
            {
                inbound = await listener.AcceptTcpClientAsync(stop);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            var outbound = new TcpClient();
            try
            {
                await outbound.ConnectAsync(IPAddress.Loopback, _target, stop);
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
            var connection = _observer?.Opened();
            _ = Pump(inbound, outbound, connection is null ? null : bytes => _observer!.ClientSent(connection, bytes.Span));
            _ = Pump(outbound, inbound, connection is null ? null : _ => _observer!.ServerSent(connection));
        }
    }

    /// <param name="seen">Called with each chunk before it is forwarded (the other side cannot answer what it has not got).</param>
    private static async Task Pump(TcpClient from, TcpClient to, Action<ReadOnlyMemory<byte>>? seen)
    {
        try
        {
            if (seen is null)
            {
                await from.GetStream().CopyToAsync(to.GetStream());
            }
            else
            {
                var buffer = new byte[64 * 1024];
                var source = from.GetStream();
                var sink = to.GetStream();
                int read;
                while ((read = await source.ReadAsync(buffer)) > 0)
                {
                    seen(buffer.AsMemory(0, read));
                    await sink.WriteAsync(buffer.AsMemory(0, read));
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or InvalidOperationException)
        {
        }
        from.Dispose();
        to.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Cut();
        _accepting.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>Sees what passes through a <see cref="TcpProxy"/>, connection by connection.</summary>
public interface ITcpObserver
{
    /// <summary>A client connected; what is returned stands for the connection in the calls that follow.</summary>
    object Opened();

    void ClientSent(object connection, ReadOnlySpan<byte> bytes);

    void ServerSent(object connection);
}
