using System.Text.Json.Nodes;
using HalfMsgBroker.Tests.Support;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace HalfMsgBroker.Tests.OperatorConsole;

/// <summary>
/// The operator console in a real headless Chromium against a broker on a loopback port: the in-doubt
/// list, commit with a reason, the timeline, dead-letter redrive and pause/resume, all by clicking; and
/// whatever the page does, it asks only its own origin and never puts the key in a URL.
/// </summary>
public sealed class ConsoleBrowserTests(ConsoleBrowser browser) : IClassFixture<ConsoleBrowser>
{
    private readonly HttpClient _c = browser.Client;

    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private void AssertStayedHome(ConsoleSession session)
    {
        Assert.Empty(session.Errors);
        Assert.NotEmpty(session.RequestUrls);
        Assert.All(session.RequestUrls, url =>
        {
            Assert.StartsWith(browser.Origin + "/", url, StringComparison.Ordinal);
            Assert.DoesNotContain(BrokerFactory.AdminKey, Uri.UnescapeDataString(url), StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task A_half_message_appears_in_doubt_is_committed_from_the_page_and_its_timeline_shows_it_delivered()
    {
        await using var receiver = await TestReceiver.Answering(200);
        var (producers, consumers, topic, tx) = (Unique("pg"), Unique("g"), Unique("orders"), Unique("order"));
        await _c.Put($"/v1/producer-groups/{producers}", new { });
        await _c.Subscribe(consumers, topic, new JsonObject { ["push"] = new JsonObject { ["url"] = receiver.Url } });
        await using var session = await ConsoleSession.SignIn(browser);
        var page = session.Page;
        await session.Go("#/transactions");
        await Expect(page.Locator("#transactions")).ToBeVisibleAsync();

        // Sent while the page is open: the list picks it up.
        var id = await _c.SendHalf(topic, tx, group: producers, extra: new { checkImmunitySeconds = 3600 });
        var row = page.Locator($"tr[data-transaction-id='{tx}']");
        await Expect(row).ToHaveAttributeAsync("data-state", "prepared");
        await Expect(row).ToContainTextAsync(producers);

        await row.GetByRole(AriaRole.Button, new() { Name = "Commit" }).ClickAsync();
        await session.GiveReason("customer paid; producer crashed before committing");
        await Expect(page.Locator("#status")).ToContainTextAsync($"Transaction {tx} is committed");
        Assert.Equal("committed", (await _c.Transaction(tx)).Str("state"));
        // No longer in doubt: the list (prepared ones by default) drops it.
        await Expect(row).ToHaveCountAsync(0);

        await session.Go($"#/messages/{id}");
        await Expect(page.Locator("#timeline li[data-event='born']")).ToContainTextAsync(topic);
        await Expect(page.Locator("#timeline li[data-event='committed']")).ToContainTextAsync("admin-key");
        await Expect(page.Locator("#timeline li[data-event='audit']")).ToContainTextAsync("customer paid");
        await Expect(page.Locator($"#timeline li[data-event='delivery'][data-group='{consumers}']")).ToHaveAttributeAsync("data-state", "acked");
        Assert.Equal(id, Assert.Single(receiver.Requests).Body.Str("messageId"));
        await session.Screenshot("timeline");
        AssertStayedHome(session);
    }

    [Fact]
    public async Task A_dead_letter_is_redriven_by_clicking()
    {
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic, new { maxAttempts = 1 });
        var id = await _c.Send(topic, new { orderId = 42 });
        var handle = Assert.Single(await _c.Receive(group, topic, wait: 5))!.Str("receiptHandle");
        await _c.Post($"/v1/consumer-groups/{group}/nack", new { receiptHandle = handle, retryAfterSeconds = 0 });
        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "deadLettered", "dead-lettered");

        await using var session = await ConsoleSession.SignIn(browser);
        var page = session.Page;
        await session.Go($"#/dead-letters/{group}");
        var row = page.Locator($"tr[data-message-id='{id}']");
        await Expect(row).ToBeVisibleAsync();
        await row.Locator("input.select").CheckAsync();
        await page.Locator("#redrive-selected").ClickAsync();
        await session.GiveReason("consumer fixed, version 1.4.2");
        await Expect(page.Locator("#no-dead-letters")).ToBeVisibleAsync();
        await Expect(page.Locator("#status")).ToContainTextAsync("1 redriven");

        Assert.Equal("pending", await _c.DeliveryState(id, group));
        Assert.Equal(id, Assert.Single(await _c.Receive(group, topic, wait: 5))!.Str("messageId"));
        var entry = (await _c.Get($"/v1/audit?target={group}")).Json["entries"]!.AsArray().Last()!;
        Assert.Equal("dead-letters.redrive", entry.Str("action"));
        Assert.Contains("reason=consumer fixed, version 1.4.2", entry.Str("detail"), StringComparison.Ordinal);
        AssertStayedHome(session);
    }

    [Fact]
    public async Task A_push_subscription_is_paused_and_resumed_from_the_page()
    {
        await using var receiver = await TestReceiver.Answering(200);
        var (group, topic) = (Unique("g"), Unique("t"));
        await _c.Subscribe(group, topic, new JsonObject { ["push"] = new JsonObject { ["url"] = receiver.Url } });
        await using var session = await ConsoleSession.SignIn(browser);
        var page = session.Page;
        await session.Go("#/groups");
        var row = page.Locator($"tr[data-subscription='{group}/{topic}']");
        await Expect(row).ToHaveAttributeAsync("data-paused", "false");

        await row.GetByRole(AriaRole.Button, new() { Name = "Pause" }).ClickAsync();
        await session.GiveReason("receiver is being redeployed");
        await Expect(row).ToHaveAttributeAsync("data-paused", "true");

        var id = await _c.Send(topic);
        // Held, not pushed: the page shows it waiting as ready.
        await Expect(row.Locator("td.ready")).ToHaveTextAsync("1");
        Assert.Empty(receiver.Requests);

        await row.GetByRole(AriaRole.Button, new() { Name = "Resume" }).ClickAsync();
        await session.GiveReason("redeployed");
        await Expect(row).ToHaveAttributeAsync("data-paused", "false");
        await Eventually.Until(() => _c.DeliveryState(id, group), s => s == "acked", "pushed after resume");
        Assert.Single(receiver.Requests);
        await Expect(row.Locator("td.health")).ToContainTextAsync("ok, last push");
        AssertStayedHome(session);
    }

    [Fact]
    public async Task Every_page_asks_only_its_own_origin_and_the_key_stays_out_of_urls_and_local_storage()
    {
        // Something on every page: transactions the producer answers "still running" for, deliveries
        // to a failing push endpoint, a dead letter, traffic on two topics.
        await using var checker = await TestReceiver.Answering(200, "{\"state\":\"unknown\",\"retryAfterSeconds\":3600}");
        await using var failing = await TestReceiver.Answering(503);
        var (producers, group, pushGroup, topic, other, tx) = (Unique("inventory"), Unique("billing"), Unique("mailer"), Unique("orders"), Unique("payments"), Unique("order"));
        await _c.Put($"/v1/producer-groups/{producers}", new JsonObject { ["checkUrl"] = checker.Url });
        await _c.Subscribe(group, topic, new { maxAttempts = 1 });
        await _c.Subscribe(pushGroup, other, new JsonObject { ["push"] = new JsonObject { ["url"] = failing.Url }, ["maxAttempts"] = 1000 });
        for (var i = 0; i < 6; i++) await _c.Send(i % 2 == 0 ? topic : other, new { orderId = i });
        var handle = (await _c.Receive(group, topic, max: 1, wait: 5))[0]!.Str("receiptHandle");
        await _c.Post($"/v1/consumer-groups/{group}/nack", new { receiptHandle = handle, retryAfterSeconds = 0 });
        var id = await _c.SendHalf(topic, tx, group: producers);
        await _c.SendHalf(topic, Unique("order"), group: producers);
        await Eventually.Until(() => _c.Transaction(tx), t => t.Int("unknownCount") >= 1, "the producer's first answer");
        await using var session = await ConsoleSession.SignIn(browser);
        var page = session.Page;

        await session.Go("#/overview");
        await Expect(page.Locator("#prepared-card .big")).Not.ToHaveTextAsync("0");
        await Expect(page.Locator($"#charts figure:has-text('topic {topic}') svg polyline").First).ToBeAttachedAsync();
        await Expect(page.Locator($"#dead-letters-card")).ToContainTextAsync(group);
        await session.Screenshot("overview");
        await session.Go("#/transactions");
        await Expect(page.Locator($"tr[data-transaction-id='{tx}']")).ToBeVisibleAsync();
        await page.Locator($"tr[data-transaction-id='{tx}']").GetByRole(AriaRole.Button, new() { Name = "Check now" }).ClickAsync();
        await session.GiveReason("producer says it is done");
        await Expect(page.Locator("#status")).ToContainTextAsync("brought forward");
        await session.Screenshot("transactions");
        await session.Go($"#/messages/{id}");
        await Expect(page.Locator("#timeline li[data-event='born']")).ToBeVisibleAsync();
        await session.Go($"#/dead-letters/{group}");
        await Expect(page.Locator("#dead-letter-table")).ToBeVisibleAsync();
        await session.Screenshot("dead-letters");
        await session.Go("#/groups");
        await Expect(page.Locator($"tr[data-subscription='{group}/{topic}']")).ToBeVisibleAsync();
        await Expect(page.Locator($"tr[data-subscription='{pushGroup}/{other}'] td.health")).ToContainTextAsync("http 503");
        await session.Screenshot("groups");

        Assert.Equal(BrokerFactory.AdminKey, await page.EvaluateAsync<string>("sessionStorage.getItem('halfmsg.adminKey')"));
        Assert.Equal(0, await page.EvaluateAsync<int>("localStorage.length"));
        Assert.DoesNotContain(BrokerFactory.AdminKey, page.Url, StringComparison.Ordinal);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Expect(page.Locator("#sign-in")).ToBeVisibleAsync();
        Assert.Null(await page.EvaluateAsync<string?>("sessionStorage.getItem('halfmsg.adminKey')"));
        AssertStayedHome(session);
    }

    [Fact]
    public async Task A_wrong_key_is_refused_at_sign_in()
    {
        var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = browser.Origin });
        try
        {
            var page = await context.NewPageAsync();
            await page.GotoAsync("/console/");
            await page.Locator("#key-input").FillAsync("hmb_not-a-key-at-all");
            await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
            await Expect(page.Locator("#sign-in-error")).ToContainTextAsync("refused");
            await Expect(page.Locator("#nav")).ToBeHiddenAsync();
            Assert.Null(await page.EvaluateAsync<string?>("sessionStorage.getItem('halfmsg.adminKey')"));
        }
        finally
        {
            await context.CloseAsync();
        }
    }
}
