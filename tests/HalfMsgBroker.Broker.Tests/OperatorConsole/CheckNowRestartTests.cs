using System.Net;
using HalfMsgBroker.Tests.Support;
using HalfMsgBroker.Transactions;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace HalfMsgBroker.Tests.OperatorConsole;

/// <summary>"Check now" stores the due time, so a restart right after it still checks at once.</summary>
public sealed class CheckNowRestartTests : IDisposable
{
    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-checknow-tests", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_dataPath);

    // Checks an hour after the send, and an hour apart: only "check now" makes one soon.
    private BrokerFactory Broker() => new(new Dictionary<string, string?>
    {
        ["Broker:DataPath"] = _dataPath,
        ["Broker:Transactions:CheckAfter"] = "01:00:00",
        ["Broker:Transactions:CheckInterval"] = "01:00:00",
    });

    [Fact]
    public async Task A_check_brought_forward_before_a_restart_is_made_after_it()
    {
        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"commit\"}");
        await using (var factory = Broker())
        await using (var withoutCheckBack = factory.WithWebHostBuilder(b => b.ConfigureTestServices(services =>
        {
            // This broker brings the check forward and stops before its check-back loop could make it.
            var loop = services.Single(d => d.ServiceType == typeof(IHostedService) && d.ImplementationType == typeof(CheckBackService));
            services.Remove(loop);
        })))
        {
            var c = withoutCheckBack.CreateClient();
            await c.Put("/v1/producer-groups/orders-svc", new { checkUrl = checker.Url });
            await c.SendHalf("orders", "order-1", group: "orders-svc");
            var before = DateTime.Parse((await c.Transaction("order-1")).Str("nextCheckAt"), null, System.Globalization.DateTimeStyles.RoundtripKind);
            Assert.True(before > DateTime.UtcNow.AddMinutes(59), $"next check at {before:O}");

            var check = await c.Post("/v1/transactions/order-1/check", new { reason = "stuck order" });
            Assert.Equal(HttpStatusCode.OK, check.Status);
            Assert.Equal(0, (await c.Transaction("order-1")).Int("checkCount"));
        }
        Assert.Empty(checker.Requests);

        await using var after = Broker();
        var client = after.CreateClient();
        var resolved = await Eventually.Until(() => client.Transaction("order-1"), t => t.Str("state") == "committed", "checked after the restart");
        Assert.Equal("check", resolved.Str("resolvedBy"));
        Assert.Single(checker.Requests);
    }
}
