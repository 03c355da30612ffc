using System.Diagnostics.Metrics;
using System.Net;
using HalfMsgBroker.DiskSpace;
using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Tests.Storage;

/// <summary>
/// Below <c>Broker:Storage:MinFreeBytes</c> new messages are refused with 507 while everything that
/// shrinks the backlog goes on, readiness and a gauge say why, and above it sends work again.
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class DiskSpaceTests : IAsyncLifetime
{
    private const long Limit = 100L * 1024 * 1024;
    private readonly BrokerFactory _root = new(new Dictionary<string, string?>
    {
        ["Broker:Storage:MinFreeBytes"] = Limit.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Broker:Storage:FreeSpaceCheckInterval"] = "00:00:00.050",
    });
    private readonly SettableFreeSpace _free = new() { Bytes = 10 * Limit };
    private WebApplicationFactory<Program> _factory = null!;
    private HttpClient _c = null!;

    private sealed class SettableFreeSpace : IFreeSpace
    {
        public volatile string? Folder;
        private long _bytes;

        public long Bytes
        {
            get => Interlocked.Read(ref _bytes);
            set => Interlocked.Exchange(ref _bytes, value);
        }

        public long AvailableBytes(string folder)
        {
            Folder = folder;
            return Bytes;
        }
    }

    public Task InitializeAsync()
    {
        _factory = _root.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<IFreeSpace>(_free)));
        _c = _factory.CreateClient();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _c.Dispose();
        await _root.DisposeAsync();
    }

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task Below_the_limit_sends_get_507_while_the_backlog_can_still_shrink_then_sends_work_again()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic);
        var queued = await _c.Send(topic);
        await _c.SendHalf(topic, "disk-commit");
        await _c.SendHalf(topic, "disk-rollback");
        Assert.Equal("Healthy", (await _c.Get("/health/ready")).Raw);

        _free.Bytes = Limit - 1;
        await Eventually.Until(() => _c.Get("/health/ready"), a => a.Raw.StartsWith("Degraded", StringComparison.Ordinal), "the low disk noticed");
        var refused = await _c.Post($"/v1/topics/{topic}/messages", new { body = new { n = 1 } });
        Assert.Equal(HttpStatusCode.InsufficientStorage, refused.Status);
        Assert.Equal("insufficient-storage", refused.Code);
        var detail = refused.Json["detail"]!.GetValue<string>();
        Assert.Contains($"({Limit - 1} bytes) free", detail, StringComparison.Ordinal);
        Assert.Contains($"Broker:Storage:MinFreeBytes (100 MiB ({Limit} bytes))", detail, StringComparison.Ordinal);
        Assert.Contains("Free disk space", detail, StringComparison.Ordinal);
        var half = await _c.Post($"/v1/topics/{topic}/half-messages", new { transactionId = "disk-refused", producerGroup = "order-service", body = new { n = 2 } });
        Assert.Equal((HttpStatusCode.InsufficientStorage, "insufficient-storage"), (half.Status, half.Code));
        Assert.Equal(HttpStatusCode.NotFound, (await _c.Get("/v1/transactions/disk-refused")).Status);

        // What lets the backlog shrink goes on.
        Assert.Equal(HttpStatusCode.OK, (await _c.Post("/v1/transactions/disk-commit/commit")).Status);
        Assert.Equal(HttpStatusCode.OK, (await _c.Post("/v1/transactions/disk-rollback/rollback")).Status);
        var received = await _c.Receive(group, topic, max: 10, wait: 5);
        Assert.Equal(2, received.Count);
        var nack = await _c.Post($"/v1/consumer-groups/{group}/nack", new { receiptHandle = received[0]!.Str("receiptHandle"), retryAfterSeconds = 0 });
        Assert.Equal(HttpStatusCode.OK, nack.Status);
        var again = Assert.Single(await _c.Receive(group, topic, wait: 5))!;
        var ack = await _c.Ack(group, again.Str("receiptHandle"), received[1]!.Str("receiptHandle"));
        Assert.Equal((HttpStatusCode.OK, 2), (ack.Status, ack.Json.Int("acked")));
        Assert.Equal("acked", await _c.DeliveryState(queued, group));

        // Ready stays 200 (consumers must keep coming), and says why.
        var ready = await _c.Get("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.Status);
        Assert.StartsWith("Degraded: The broker's data folder has 100 MiB", ready.Raw, StringComparison.Ordinal);
        Assert.Equal(_root.DataPath, _free.Folder);

        _free.Bytes = Limit;
        await Eventually.Until(() => _c.Post($"/v1/topics/{topic}/messages", new { body = new { n = 3 } }),
            a => a.Status == HttpStatusCode.Created, "sends accepted again at the limit");
        Assert.Equal(HttpStatusCode.Created, (await _c.Post($"/v1/topics/{topic}/half-messages",
            new { transactionId = "disk-again", producerGroup = "order-service", body = new { n = 4 } })).Status);
        Assert.Equal("Healthy", (await _c.Get("/health/ready")).Raw);
    }

    [Fact]
    public async Task The_gauges_report_the_free_bytes_and_the_low_flag()
    {
        // Other test hosts publish the same gauges (with the real disk's figures): look for this host's values among them.
        var seen = new List<(string Name, long Value)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "HalfMsgBroker" && instrument.Name.StartsWith("halfmsg.storage.", StringComparison.Ordinal)) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => seen.Add((instrument.Name, value)));
        listener.SetMeasurementEventCallback<int>((instrument, value, _, _) => seen.Add((instrument.Name, value)));
        listener.Start();
        _ = _factory.Services; // the host, and its meter, exist from here
        await _c.Get("/health/ready");

        _free.Bytes = 42;
        await Eventually.Until(() =>
        {
            seen.Clear();
            listener.RecordObservableInstruments();
            return seen.Contains(("halfmsg.storage.free_bytes", 42)) && seen.Contains(("halfmsg.storage.disk_low", 1));
        }, "gauges at 42 bytes, low");

        _free.Bytes = 2 * Limit;
        await Eventually.Until(() =>
        {
            seen.Clear();
            listener.RecordObservableInstruments();
            return seen.Contains(("halfmsg.storage.free_bytes", 2 * Limit)) && !seen.Contains(("halfmsg.storage.disk_low", 1));
        }, "gauges back above the limit");
    }
}
