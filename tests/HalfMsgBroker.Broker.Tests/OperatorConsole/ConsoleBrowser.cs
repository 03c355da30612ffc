using System.Collections.Concurrent;
using System.Net;
using HalfMsgBroker.Tests.Support;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace HalfMsgBroker.Tests.OperatorConsole;

/// <summary>
/// One broker listening on a real loopback port and one headless Chromium (Debian's package, never a
/// downloaded browser) for a test class; each test gets a fresh browser context.
/// </summary>
public sealed class ConsoleBrowser : IAsyncLifetime
{
    /// <summary>Debian's chromium; <c>HALFMSG_CHROMIUM</c> points elsewhere.</summary>
    public static string ChromiumPath => Environment.GetEnvironmentVariable("HALFMSG_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public BrokerFactory Factory { get; } = new();
    public HttpClient Client { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;
    public string Origin { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Factory.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        Factory.StartServer();
        var address = Factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Origin = new Uri(address).GetLeftPart(UriPartial.Authority);
        Client = Factory.CreateClient();
        Client.BaseAddress = new Uri(Origin);

        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException($"{ChromiumPath} is missing: apt-get install chromium (.ci/run does), or set HALFMSG_CHROMIUM.");
        }
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            // Chromium refuses its sandbox to root (CI containers); the page is the broker's own.
            Args = Environment.UserName == "root" ? ["--no-sandbox"] : [],
        });
        Assertions.SetDefaultExpectTimeout(15_000);
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.CloseAsync();
        _playwright?.Dispose();
        Client?.Dispose();
        await Factory.DisposeAsync();
    }
}

/// <summary>A signed-in console page whose every request is recorded.</summary>
public sealed class ConsoleSession : IAsyncDisposable
{
    private readonly IBrowserContext _context;

    private ConsoleSession(IBrowserContext context, IPage page)
    {
        _context = context;
        Page = page;
    }

    public IPage Page { get; }
    public ConcurrentQueue<string> RequestUrls { get; } = new();

    /// <summary>Console errors and uncaught exceptions: a Content-Security-Policy violation lands here too.</summary>
    public ConcurrentQueue<string> Errors { get; } = new();

    public static async Task<ConsoleSession> SignIn(ConsoleBrowser browser)
    {
        var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = browser.Origin, ViewportSize = new() { Width = 1280, Height = 800 } });
        var page = await context.NewPageAsync();
        var session = new ConsoleSession(context, page);
        context.Request += (_, request) => session.RequestUrls.Enqueue(request.Url);
        page.Console += (_, message) =>
        {
            if (message.Type == "error") session.Errors.Enqueue(message.Text);
        };
        page.PageError += (_, error) => session.Errors.Enqueue(error);
        await page.GotoAsync("/console/");
        await page.Locator("#key-input").FillAsync(BrokerFactory.AdminKey);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(page.Locator("#nav")).ToBeVisibleAsync();
        return session;
    }

    public Task Go(string route) => Page.GotoAsync("/console/" + route);

    /// <summary>Fills the reason dialog the last click opened and confirms it.</summary>
    public async Task GiveReason(string reason)
    {
        await Assertions.Expect(Page.Locator("#reason-dialog")).ToBeVisibleAsync();
        await Page.Locator("#reason-text").FillAsync(reason);
        await Page.Locator("#reason-confirm").ClickAsync();
        await Assertions.Expect(Page.Locator("#reason-dialog")).ToBeHiddenAsync();
    }

    /// <summary>Saves a screenshot when <c>HALFMSG_CONSOLE_SCREENSHOTS</c> names a folder (how docs/console/*.png are made).</summary>
    public async Task Screenshot(string name)
    {
        if (Environment.GetEnvironmentVariable("HALFMSG_CONSOLE_SCREENSHOTS") is not { Length: > 0 } folder) return;
        Directory.CreateDirectory(folder);
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(folder, name + ".png"), FullPage = true });
    }

    public async ValueTask DisposeAsync() => await _context.CloseAsync();
}
