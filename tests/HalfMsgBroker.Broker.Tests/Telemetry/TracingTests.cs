using System.Diagnostics;
using System.Net;
using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace HalfMsgBroker.Tests.Telemetry;

/// <summary>
/// The broker's own tracing set-up (<c>Broker:Telemetry:Tracing</c>, the in-memory exporter in place of
/// OTLP): a producer's traceparent runs through the half message, the check-back and the push. Other
/// hosts in the process make spans too while this tracer listens, so only this trace's spans count.
/// </summary>
public sealed class TracingTests
{
    private const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    private const string ProducerSpanId = "00f067aa0ba902b7";
    private const string ProducerTraceParent = "00-" + TraceId + "-" + ProducerSpanId + "-01";

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task A_half_message_checked_back_and_pushed_stays_in_the_producers_trace()
    {
        var exported = new List<Activity>();
        await using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Telemetry:Tracing"] = "true" });
        await using var traced = factory.WithWebHostBuilder(b => b.ConfigureServices(s =>
            s.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(exported))));
        using var c = traced.CreateClient();
        Assert.NotNull(traced.Services.GetService<TracerProvider>());

        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
        await using var consumer = await TestReceiver.Answering(200);
        var (producerGroup, group, topic, tx) = (Unique("pg"), Unique("g"), Unique("t"), Unique("tx"));
        Assert.Equal(HttpStatusCode.Created, (await c.Put($"/v1/producer-groups/{producerGroup}", new { checkUrl = checker.Url })).Status);
        await c.Subscribe(group, topic, new { push = new { url = consumer.Url } });

        var half = await c.Post($"/v1/topics/{topic}/half-messages",
            new { producerGroup, transactionId = tx, body = new { orderId = 1 } },
            new Dictionary<string, string> { ["traceparent"] = ProducerTraceParent });
        Assert.Equal(HttpStatusCode.Created, half.Status);
        await Eventually.Until(() => consumer.Requests.Count == 1, "the push after the check-back's commit");

        // Both calls carry this trace, each under a span of the broker's, not the producer's span itself.
        Assert.True(checker.Requests.TryPeek(out var check));
        Assert.True(consumer.Requests.TryPeek(out var push));
        foreach (var header in new[] { check.Headers["traceparent"], push.Headers["traceparent"] })
        {
            Assert.Equal(TraceId, header.Split('-')[1]);
            Assert.NotEqual(ProducerSpanId, header.Split('-')[2]);
        }

        var spans = await Eventually.Until(
            () => Task.FromResult(exported.ToArray().Where(a => a is not null && a.TraceId.ToHexString() == TraceId).ToList()),
            s => s.Any(a => a.DisplayName == "push"),
            "the push span to end");
        var checkSpan = Assert.Single(spans, a => a.Source.Name == "HalfMsgBroker" && a.DisplayName == "check");
        Assert.Equal((ActivityKind.Client, ProducerSpanId), (checkSpan.Kind, checkSpan.ParentSpanId.ToHexString()));
        Assert.Equal(producerGroup, checkSpan.GetTagItem("halfmsg.producer_group"));
        var pushSpan = Assert.Single(spans, a => a.Source.Name == "HalfMsgBroker" && a.DisplayName == "push");
        Assert.Equal((ActivityKind.Client, ProducerSpanId), (pushSpan.Kind, pushSpan.ParentSpanId.ToHexString()));
        Assert.Equal(200, pushSpan.GetTagItem("http.response.status_code"));
        var halfSpan = Assert.Single(spans, a => a.Source.Name == "HalfMsgBroker" && a.DisplayName == "half message");
        Assert.Equal(topic, halfSpan.GetTagItem("messaging.destination.name"));
        // ASP.NET Core's request span continues the producer's header and holds the broker's span.
        var request = Assert.Single(spans, a => a.Source.Name == "Microsoft.AspNetCore" && a.SpanId == halfSpan.ParentSpanId);
        Assert.Equal(ProducerSpanId, request.ParentSpanId.ToHexString());
        // The push and the check are sent by the HTTP client under the broker's spans.
        Assert.Contains(spans, a => a.Source.Name == "System.Net.Http" && a.ParentSpanId == pushSpan.SpanId);
    }

    [Fact]
    public async Task A_broker_without_an_otlp_endpoint_records_no_traces()
    {
        await using var factory = new BrokerFactory();
        using var c = factory.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await c.Get("/health/live")).Status);
        Assert.Null(factory.Services.GetService<TracerProvider>());
    }
}
