using System.Diagnostics;
using System.Net;

namespace HalfMsgBroker.Bench;

/// <summary>
/// A producer of workloads 1 and 2 that uses the batch endpoints: N half messages in one request then
/// their N commits in one request, or N plain sends in one request. Each message counts on its own;
/// its send latency is its batch's (half batch + commit batch, or the one send).
/// </summary>
internal static class BatchedProducer
{
    public static async Task RunAsync(BrokerClient client, string topic, string producerGroup, string txPrefix, bool transactional, int batch,
        Tracker tracker, Recorder send, Func<bool> stop, CancellationToken hard)
    {
        var part = send.NewPart();
        var ks = new List<long>(batch);
        while (!stop() && !hard.IsCancellationRequested)
        {
            ks.Clear();
            for (var i = 0; i < batch; i++)
            {
                var k = tracker.Next();
                if (k < 0) break;
                ks.Add(k);
            }
            if (ks.Count == 0) break;
            try
            {
                var t0 = Stopwatch.GetTimestamp();
                if (transactional)
                {
                    var items = ks.Select(k => ($"{txPrefix}-{k}", k)).ToList();
                    var h = await client.SendHalfBatchAsync(topic, producerGroup, items, hard);
                    if (h != HttpStatusCode.OK) { send.Error(); await Task.Delay(20, hard); continue; }
                    var tc = Stopwatch.GetTimestamp();
                    foreach (var k in ks) tracker.Release(k, tc); // latency runs from "commit sent"
                    var c = await client.CommitBatchAsync(items.Select(x => x.Item1), hard);
                    if (c != HttpStatusCode.OK) { send.Error(); await Task.Delay(20, hard); continue; }
                }
                else
                {
                    var c = await client.SendPlainBatchAsync(topic, ks, hard);
                    if (c != HttpStatusCode.OK) { send.Error(); await Task.Delay(20, hard); continue; }
                    foreach (var k in ks) tracker.MarkReleased(k);
                }
                var t1 = Stopwatch.GetTimestamp();
                foreach (var _ in ks) send.Complete(part, t0, t1);
            }
            catch (OperationCanceledException) when (hard.IsCancellationRequested)
            {
                break;
            }
            catch (HttpRequestException)
            {
                send.Error();
                await Task.Delay(50, CancellationToken.None);
            }
        }
    }
}
