using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace HalfMsgBroker.Bench;

/// <summary>The RabbitMQ baseline: a durable classic queue, persistent messages, publisher confirms
/// awaited one by one per producer (a channel each), and C consumers with manual acks and a prefetch
/// of the pull batch size. Producers and consumers either each get a connection of their own (like
/// HTTP/1.1 clients) or share one connection per side with a channel each (RabbitMQ's advice, and
/// like one multiplexed h2c connection).</summary>
internal sealed class RabbitWorkloads(Settings s, Action<string> log)
{
    /// <summary>Hands each worker a connection: the one its side shares (opened on first use), or one of its own.</summary>
    private sealed class Connections(Func<string, Task<IConnection>> open, bool shared) : IAsyncDisposable
    {
        private readonly Dictionary<string, Task<IConnection>> _shared = [];

        /// <summary>A connection for one worker; <c>owned</c> says whether the worker disposes it.</summary>
        public async Task<(IConnection Connection, bool Owned)> ForAsync(string side)
        {
            if (!shared) return (await open(side), true);
            Task<IConnection> task;
            lock (_shared)
            {
                if (!_shared.TryGetValue(side, out task!)) _shared[side] = task = open(side);
            }
            return (await task, false);
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var c in _shared.Values)
            {
                try
                {
                    await (await c).DisposeAsync();
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // A connection that never opened has nothing to close; the others still do.
                }
            }
        }
    }

    private const string Mode = "durable queue, persistent, confirms";
    private readonly string _run = DateTime.UtcNow.ToString("HHmmss", CultureInfo.InvariantCulture);

    private string SystemName => string.IsNullOrEmpty(s.RabbitVersion) ? "RabbitMQ" : $"RabbitMQ {s.RabbitVersion}";

    private ConnectionFactory Factory(string name) => new()
    {
        HostName = "127.0.0.1",
        Port = s.RabbitPort,
        UserName = "guest",
        Password = "guest",
        ClientProvidedName = name,
        AutomaticRecoveryEnabled = false,
        ConsumerDispatchConcurrency = 1,
    };

    private byte[] Body(long k)
    {
        // Same size as the broker's JSON body: k, then padding.
        var b = new byte[Math.Max(16, s.PayloadBytes)];
        BinaryPrimitives.WriteInt64LittleEndian(b, k);
        b.AsSpan(8).Fill((byte)'x');
        return b;
    }

    private async Task DeclareAsync(string queue)
    {
        await using var c = await Factory("bench-setup").CreateConnectionAsync();
        await using var ch = await c.CreateChannelAsync();
        await ch.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        await ch.QueuePurgeAsync(queue);
    }

    private async Task DeleteAsync(string queue)
    {
        try
        {
            await using var c = await Factory("bench-cleanup").CreateConnectionAsync();
            await using var ch = await c.CreateChannelAsync();
            await ch.QueueDeleteAsync(queue);
        }
        catch (Exception e)
        {
            log($"  could not delete queue {queue}: {e.Message}");
        }
    }

    private Connections NewConnections(bool shared) => new(name => Factory(name).CreateConnectionAsync(), shared);

    private async Task ProducerAsync(Connections connections, string queue, Tracker tracker, Recorder send, Func<bool> stop, CancellationToken hard)
    {
        var part = send.NewPart();
        var (conn, owned) = await connections.ForAsync("bench-producer");
        await using var ownedConnection = owned ? conn : null;
        await using var ch = await conn.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), hard);
        var props = new BasicProperties { Persistent = true };
        var pacer = new Pacer(s);
        while (!stop() && !hard.IsCancellationRequested)
        {
            await pacer.WaitTurnAsync(hard);
            var k = tracker.Next();
            if (k < 0) break;
            var body = Body(k);
            var t0 = Stopwatch.GetTimestamp();
            tracker.Release(k, t0); // latency runs from "publish sent"
            try
            {
                // With confirmation tracking the call completes when the broker confirms the message.
                await ch.BasicPublishAsync("", queue, mandatory: true, props, body, hard);
                send.Complete(part, t0, Stopwatch.GetTimestamp());
            }
            catch (OperationCanceledException) when (hard.IsCancellationRequested)
            {
                break;
            }
            catch (PublishException)
            {
                send.Error();
            }
        }
    }

    private async Task<(IConnection? Owned, IChannel)> ConsumerAsync(Connections connections, string queue, Tracker tracker, Recorder e2e)
    {
        var part = e2e.NewPart();
        var (conn, owned) = await connections.ForAsync("bench-consumer");
        IChannel? ch = null;
        try
        {
            ch = await conn.CreateChannelAsync();
            await SubscribeAsync(ch, queue, tracker, e2e, part);
            return (owned ? conn : null, ch);
        }
        catch
        {
            if (ch is not null) await ch.DisposeAsync();
            if (owned) await conn.DisposeAsync();
            throw;
        }
    }

    private async Task SubscribeAsync(IChannel ch, string queue, Tracker tracker, Recorder e2e, HdrHistogram.LongHistogram part)
    {
        await ch.BasicQosAsync(0, (ushort)s.BatchSize, false);
        var consumer = new AsyncEventingBasicConsumer(ch);
        consumer.ReceivedAsync += async (_, ea) =>
        {
            var now = Stopwatch.GetTimestamp();
            var k = ea.Body.Length >= 8 ? BinaryPrimitives.ReadInt64LittleEndian(ea.Body.Span) : -1;
            var t0 = tracker.Receive(k, out var first);
            if (first) e2e.Complete(part, t0, now);
            await ch.BasicAckAsync(ea.DeliveryTag, multiple: false);
        };
        await ch.BasicConsumeAsync(queue, autoAck: false, consumer);
    }

    private async Task<(CpuDelta Cpu, double Rss)> MeasureAsync(params Recorder[] recorders)
    {
        await Task.Delay(s.ShortWarmup);
        var a = CpuSnapshot.Take(s.RabbitPid);
        foreach (var r in recorders) r.Recording = true;
        await Task.Delay(s.Measure);
        foreach (var r in recorders) r.Recording = false;
        var b = CpuSnapshot.Take(s.RabbitPid);
        return (CpuDelta.Between(a, b), Proc.RssMiB(s.RabbitPid));
    }

    private static string Noise(CpuDelta c) =>
        string.Create(CultureInfo.InvariantCulture, $"gen CPU {c.SelfSeconds:F1}s, others {c.OtherCores:F2} cores");

    private static string LayoutOf(bool shared) => shared ? "shared connections" : "a connection per worker";

    private static string ModeOf(bool shared) => Mode + "; " + LayoutOf(shared);

    public async Task<Row> EndToEndAsync(bool shared)
    {
        var name = "1 e2e transactional" + (s.Rate > 0 ? $" at {s.Rate}/s offered" : "");
        log($"workload {name} [RabbitMQ, {LayoutOf(shared)}]");
        var queue = $"bench-w1-{_run}";
        await DeclareAsync(queue);
        var tracker = new Tracker(s.MaxMessagesPerWorkload);
        var e2e = new Recorder();
        var send = new Recorder();
        var consumers = new List<(IConnection? Owned, IChannel Ch)>();
        await using var connections = NewConnections(shared);
        try
        {
            for (var i = 0; i < s.Consumers; i++) consumers.Add(await ConsumerAsync(connections, queue, tracker, e2e));
            var stop = false;
            using var hard = new CancellationTokenSource(s.ShortWarmup + s.Measure + TimeSpan.FromSeconds(60));
            var producers = Enumerable.Range(0, s.Producers)
                .Select(_ => Task.Run(() => ProducerAsync(connections, queue, tracker, send, () => Volatile.Read(ref stop), hard.Token)))
                .ToArray();
            var (cpu, rss) = await MeasureAsync(e2e, send);
            Volatile.Write(ref stop, true);
            await Task.WhenAll(producers);
            var drained = await tracker.WaitAllReceivedAsync(s.Drain);
            var h = e2e.Merged();
            var sh = send.Merged();
            var notes = string.Create(CultureInfo.InvariantCulture,
                $"publish→confirm p50 {sh.Ms(50):F1} / p99 {sh.Ms(99):F1} ms; published {tracker.Released}, received {tracker.ReceivedUnique}"
                + $"{(drained ? "" : " (NOT all received within the drain)")}, dup {tracker.Duplicates}, errors {send.Errors}; beam.smp; {Noise(cpu)}");
            return new Row(name, SystemName, ModeOf(shared), e2e.Count, e2e.Count / cpu.WallSeconds, h.Ms(50), h.Ms(99), h.MaxMs(),
                e2e.Count > 0 ? cpu.TargetSeconds / (e2e.Count / 1000.0) : double.NaN, rss, notes);
        }
        finally
        {
            foreach (var (owned, ch) in consumers)
            {
                await ch.DisposeAsync();
                if (owned is not null) await owned.DisposeAsync();
            }
            await DeleteAsync(queue);
        }
    }

    public async Task<Row> PublishOnlyAsync(bool shared)
    {
        const string name = "2 plain sends";
        log($"workload {name} [RabbitMQ, {LayoutOf(shared)}]");
        var queue = $"bench-w2-{_run}";
        await DeclareAsync(queue);
        await using var connections = NewConnections(shared);
        try
        {
            var tracker = new Tracker(s.MaxMessagesPerWorkload);
            var send = new Recorder();
            var stop = false;
            using var hard = new CancellationTokenSource(s.ShortWarmup + s.Measure + TimeSpan.FromSeconds(60));
            var producers = Enumerable.Range(0, s.Producers)
                .Select(_ => Task.Run(() => ProducerAsync(connections, queue, tracker, send, () => Volatile.Read(ref stop), hard.Token)))
                .ToArray();
            var (cpu, rss) = await MeasureAsync(send);
            Volatile.Write(ref stop, true);
            await Task.WhenAll(producers);
            var h = send.Merged();
            return new Row(name, SystemName, ModeOf(shared), send.Count, send.Count / cpu.WallSeconds, h.Ms(50), h.Ms(99), h.MaxMs(),
                send.Count > 0 ? cpu.TargetSeconds / (send.Count / 1000.0) : double.NaN, rss,
                string.Create(CultureInfo.InvariantCulture, $"latency = publish → confirm; errors {send.Errors}; beam.smp; {Noise(cpu)}"));
        }
        finally
        {
            await DeleteAsync(queue);
        }
    }
}
