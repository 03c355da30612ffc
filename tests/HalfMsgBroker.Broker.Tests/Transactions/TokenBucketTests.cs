using HalfMsgBroker.Transactions;
using Microsoft.Extensions.Time.Testing;

namespace HalfMsgBroker.Tests.Transactions;

public sealed class TokenBucketTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(20)]
    [InlineData(250)]
    public void No_second_holds_more_takes_than_the_rate_however_the_takes_are_timed(int rate)
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(rate, time);
        var random = new Random(rate);
        var takes = new List<TimeSpan>();
        var at = TimeSpan.Zero;
        // A taker that tries at random moments, sometimes in bursts, sometimes after long pauses.
        while (at < TimeSpan.FromSeconds(30))
        {
            var step = TimeSpan.FromMilliseconds(random.Next(4) == 0 ? random.Next(0, 1500) : random.Next(0, 3));
            time.Advance(step);
            at += step;
            while (bucket.TryTake()) takes.Add(at);
        }
        for (int i = 0, j = 0; i < takes.Count; i++)
        {
            while (j < takes.Count && takes[j] - takes[i] < TimeSpan.FromSeconds(1)) j++;
            Assert.True(j - i <= rate, $"{j - i} takes within a second from {takes[i]}");
        }
        // And it is not much slower than the rate in the long run: it refills at rate - capacity + 1.
        var steady = new TokenBucket(rate, time);
        var count = 0;
        for (var ms = 0; ms < 10_000; ms++)
        {
            time.Advance(TimeSpan.FromMilliseconds(1));
            while (steady.TryTake()) count++;
        }
        Assert.InRange(count, (int)(rate * 10 * 0.89), rate * 10 + steady.Capacity);
    }
}
