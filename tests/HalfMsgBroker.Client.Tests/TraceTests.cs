using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace HalfMsgBroker.Client.Tests;

/// <summary>
/// One trace from the producer's span, through the broker's check-back and push (or the pull consumer),
/// to the consumer's handler. The tracer here listens to every host in the process, so each test looks
/// only at the spans of its own trace.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class TraceTests(BrokerFixture broker) : IDisposable
{
    private static readonly ActivitySource Producer = new("HalfMsgBroker.Tests.Producer");

    private readonly List<Activity> _exported = [];
    private readonly string _topic = Names.Unique("orders");
    private readonly string _group = Names.Unique("inventory");
    private TracerProvider? _tracing;

    public void Dispose() => _tracing?.Dispose();

    private void StartTracing() => _tracing = Sdk.CreateTracerProviderBuilder()
        .AddSource(Producer.Name, "HalfMsgBroker", HalfMsgDiagnostics.ActivitySourceName)
        .AddInMemoryExporter(_exported)
        .Build();

    /// <summary>The exporter appends under its processor's lock; a copy may end in a slot not yet written.</summary>
    private List<Activity> SpansOf(ActivityTraceId trace) =>
        [.. _exported.ToArray().Where(a => a is not null && a.TraceId == trace)];

    private async Task<IReadOnlyList<SubscriptionInfo>> SubscriptionsAsync()
    {
        try
        {
            return (await broker.Api.GetConsumerGroupAsync(_group)).Subscriptions;
        }
        catch (HalfMsgException ex) when (ex.Status == 404)
        {
            return [];
        }
    }

    [Fact]
    public async Task One_trace_runs_from_the_producer_through_the_check_back_to_the_push_handler()
    {
        StartTracing();
        var producerGroup = Names.Unique("orders-service");
        var handled = new ConcurrentQueue<(ActivityTraceId Trace, string? Source, ActivityKind Kind)>();
        await using var producerApp = await TestApp.StartAsync(
            broker.BaseAddress,
            _ => { },
            a => a.MapHalfMsgCheck("/halfmsg/check", (_, _, _) => Task.FromResult(LocalTransactionState.Commit)));
        await broker.Api.PutProducerGroupAsync(producerGroup, new ProducerGroupRequest(producerApp.Url("/halfmsg/check")));
        await using var consumerApp = await TestApp.StartAsync(
            broker.BaseAddress,
            b => b.AddPushSubscription(_group, _topic, TestApp.UrlOf("/halfmsg/orders")),
            a => a.MapHalfMsgPush<Order>("/halfmsg/orders", (_, _) =>
            {
                var current = Activity.Current;
                handled.Enqueue((current?.TraceId ?? default, current?.Source.Name, current?.Kind ?? ActivityKind.Internal));
                return Task.CompletedTask;
            }));
        await Eventually.UntilAsync(
            async () => (await SubscriptionsAsync()).SingleOrDefault()?.Push?.Url,
            url => url == consumerApp.Url("/halfmsg/orders"),
            "the push subscription registration");

        ActivityTraceId trace;
        using (var span = Producer.StartActivity("place order", ActivityKind.Producer))
        {
            Assert.NotNull(span);
            trace = span.TraceId;
            // Never committed by the producer: the broker's check-back commits it.
            await broker.Api.SendHalfMessageAsync(_topic, new SendHalfMessageRequest(producerGroup, JsonSerializer.SerializeToElement(new Order("t-1", 1))));
        }

        await Eventually.UntilAsync(() => !handled.IsEmpty, "the push handler to run");
        Assert.True(handled.TryPeek(out var handler));
        Assert.Equal((trace, HalfMsgDiagnostics.ActivitySourceName, ActivityKind.Consumer), handler);

        var spans = await Eventually.UntilAsync(
            () => Task.FromResult(SpansOf(trace)),
            // The broker's push span ends after the handler's, once the handler's answer is back.
            s => s.Any(a => a.DisplayName == "process " + _topic) && s.Any(a => a.Source.Name == "HalfMsgBroker" && a.DisplayName == "push"),
            "the handler's and the push's spans to end");
        var check = Assert.Single(spans, a => a.Source.Name == "HalfMsgBroker" && a.DisplayName == "check");
        Assert.Equal(ActivityKind.Client, check.Kind);
        var push = Assert.Single(spans, a => a.Source.Name == "HalfMsgBroker" && a.DisplayName == "push");
        Assert.Equal(ActivityKind.Client, push.Kind);
        Assert.Equal(_group, push.GetTagItem("messaging.consumer.group.name"));
        Assert.Contains(spans, a => a.Source.Name == "HalfMsgBroker" && a.DisplayName == "half message");
    }

    [Fact]
    public async Task A_pull_consumers_handler_continues_the_trace_of_the_send()
    {
        StartTracing();
        var handled = new ConcurrentQueue<(ActivityTraceId Trace, string? Source)>();
        await using var app = await TestApp.StartAsync(
            broker.BaseAddress,
            b => b.AddPullConsumer<Order>(_group, _topic, (_, _, _) =>
            {
                handled.Enqueue((Activity.Current?.TraceId ?? default, Activity.Current?.Source.Name));
                return Task.CompletedTask;
            }, o => o.WaitTime = TimeSpan.FromSeconds(1)),
            _ => { });
        await Eventually.UntilAsync(async () => (await SubscriptionsAsync()).Count, n => n == 1, "the hosted consumer's subscription");

        ActivityTraceId trace;
        using (var span = Producer.StartActivity("place order", ActivityKind.Producer))
        {
            Assert.NotNull(span);
            trace = span.TraceId;
            await broker.Client.SendAsync(_topic, new Order("t-2", 1));
        }

        await Eventually.UntilAsync(() => !handled.IsEmpty, "the pull handler to run");
        Assert.True(handled.TryPeek(out var handler));
        Assert.Equal((trace, HalfMsgDiagnostics.ActivitySourceName), handler);
    }
}
