using System.Diagnostics;

namespace HalfMsgBroker.Client;

/// <summary>
/// The SDK's tracing. Its <see cref="ActivitySource"/> is named <see cref="ActivitySourceName"/>: add it to
/// your tracer (<c>.WithTracing(t => t.AddSource(HalfMsgDiagnostics.ActivitySourceName))</c>) and each
/// push or pull handler runs in a consumer span that continues the trace of the producer's send.
/// </summary>
public static class HalfMsgDiagnostics
{
    /// <summary>The name of the SDK's activity source.</summary>
    public const string ActivitySourceName = "HalfMsgBroker.Client";

    internal static readonly ActivitySource Source = new(ActivitySourceName, typeof(HalfMsgDiagnostics).Assembly.GetName().Version?.ToString());

    /// <summary>
    /// A consumer span around one handler call: the child of <paramref name="traceParent"/> (the message's
    /// <c>traceparent</c>) when there is no current span to continue. Null, before any tag is made, when
    /// nobody listens.
    /// </summary>
    internal static Activity? StartProcess(string topic, string messageId, string consumerGroup, int attempt, string? traceParent)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        // On a push, ASP.NET Core's request span (when it records one) already continues the header's trace.
        var parent = default(ActivityContext);
        if (Activity.Current is null)
        {
            ActivityContext.TryParse(traceParent, null, isRemote: true, out parent);
        }

        var activity = Source.StartActivity("process " + topic, ActivityKind.Consumer, parent);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("messaging.system", "halfmsg");
            activity.SetTag("messaging.operation.type", "process");
            activity.SetTag("messaging.destination.name", topic);
            activity.SetTag("messaging.message.id", messageId);
            activity.SetTag("messaging.consumer.group.name", consumerGroup);
            activity.SetTag("halfmsg.attempt", attempt);
        }

        return activity;
    }

    /// <summary>Marks the span failed with the handler's exception type.</summary>
    internal static void Failed(Activity? activity, Exception error)
    {
        activity?.SetStatus(ActivityStatusCode.Error, error.GetType().Name);
    }
}
