using System.Diagnostics;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// The broker's spans (activity source <c>HalfMsgBroker</c>). Each helper returns null when nobody
/// listens, before any tag is made, so tracing costs one check on the hot path when it is off.
/// </summary>
internal static class BrokerTracing
{
    public const string SourceName = "HalfMsgBroker";
    public static readonly ActivitySource Source = new(SourceName, "1.0");

    /// <summary>A span for the request's broker operation, inside the ASP.NET Core request span.</summary>
    public static Activity? StartOperation(string operation, RouteValueDictionary route)
    {
        if (!Source.HasListeners()) return null;
        var activity = Source.StartActivity(operation, ActivityKind.Internal);
        if (activity is not { IsAllDataRequested: true }) return activity;
        activity.SetTag("messaging.system", "halfmsg");
        if (route.TryGetValue("topic", out var topic)) activity.SetTag("messaging.destination.name", topic);
        if (route.TryGetValue("group", out var group)) activity.SetTag("messaging.consumer.group.name", group);
        if (route.TryGetValue("transactionId", out var tx)) activity.SetTag("halfmsg.transaction_id", tx);
        return activity;
    }

    /// <summary>
    /// A client span for a call the broker makes about a stored message (a check-back or a push): the
    /// child of the producer's span when the send carried a <c>traceparent</c>, so one trace runs from
    /// the producer through the broker to the consumer; a trace of its own otherwise (never the child
    /// of whatever span happened to be current on a background thread).
    /// </summary>
    public static Activity? StartCall(string operation, string? traceParent, string topic, Guid messageId, string? group)
    {
        if (!Source.HasListeners()) return null;
        ActivityContext.TryParse(traceParent, null, isRemote: true, out var parent);
        Activity.Current = null;
        var activity = Source.StartActivity(operation, ActivityKind.Client, parent);
        if (activity is not { IsAllDataRequested: true }) return activity;
        activity.SetTag("messaging.system", "halfmsg");
        activity.SetTag("messaging.destination.name", topic);
        activity.SetTag("messaging.message.id", messageId.ToString());
        if (group is not null) activity.SetTag(operation == "push" ? "messaging.consumer.group.name" : "halfmsg.producer_group", group);
        return activity;
    }

    /// <summary>Records how a call ended: the HTTP status, or the failure word the broker stores.</summary>
    public static void Ended(Activity? activity, int status, string? failure)
    {
        if (activity is null) return;
        if (status > 0) activity.SetTag("http.response.status_code", status);
        if (failure is not null) activity.SetStatus(ActivityStatusCode.Error, failure);
    }
}
