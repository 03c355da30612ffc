using System.Collections.Frozen;
using System.Security.Cryptography;
using HalfMsgBroker.Api;
using HalfMsgBroker.Delivery;
using HalfMsgBroker.Hosting;
using HalfMsgBroker.Storage;
using Microsoft.Net.Http.Headers;

namespace HalfMsgBroker.OperatorConsole;

/// <summary>
/// The operator console at <c>/console/</c>: static files embedded in the broker's assembly, served
/// without a key (they hold no data; every figure comes from <c>/v1</c> with the key the operator
/// types in) under a Content-Security-Policy that lets the page reach its own origin only and run no
/// inline script.
/// </summary>
internal static class ConsoleFiles
{
    public const string Path = "/console";

    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static readonly FrozenDictionary<string, string> ContentTypes = new Dictionary<string, string>
    {
        [".html"] = "text/html; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".svg"] = "image/svg+xml",
        [".png"] = "image/png",
    }.ToFrozenDictionary();

    private sealed record File(byte[] Bytes, string ContentType, string ETag);

    private static readonly Lazy<FrozenDictionary<string, File>> Files = new(Load);

    public static WebApplicationBuilder AddOperatorConsole(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton(sp => new ConsoleFigures(new StoreFigures(
            sp.GetRequiredService<IStoreMonitoring>(), sp.GetRequiredService<DeliveryRegistry>(), sp.GetRequiredService<TimeProvider>(),
            ConsoleFigures.MaxAge, sp.GetRequiredService<ILogger<ConsoleFigures>>())));
        return builder;
    }

    public static WebApplication MapOperatorConsole(this WebApplication app)
    {
        app.MapConsoleApi();
        // One route for /console and /console/…: routing ignores a trailing slash, so two would both match /console/.
        app.MapGet(Path + "/{*file}", Serve).ExcludeFromDescription().AllowAnonymous();
        return app;
    }

    private static IResult Serve(HttpContext http, string? file)
    {
        // The page's relative links need the trailing slash.
        if (string.IsNullOrEmpty(file) && !http.Request.Path.Value!.EndsWith('/')) return Results.Redirect(Path + "/");
        var name = string.IsNullOrEmpty(file) ? "index.html" : file;
        if (!Files.Value.TryGetValue(name, out var found)) return Results.NotFound();

        var headers = http.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        // Revalidated every time, so a new broker version's files are never mixed with an old cached script.
        headers.CacheControl = "no-cache";
        headers.ETag = found.ETag;
        if (http.Request.Headers.IfNoneMatch.ToString() == found.ETag) return Results.StatusCode(StatusCodes.Status304NotModified);
        return Results.Bytes(found.Bytes, found.ContentType);
    }

    private static FrozenDictionary<string, File> Load()
    {
        var assembly = typeof(ConsoleFiles).Assembly;
        var files = new Dictionary<string, File>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith("console/", StringComparison.Ordinal)) continue;
            var name = resource["console/".Length..].Replace('\\', '/');
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var bytes = copy.ToArray();
            var type = ContentTypes.GetValueOrDefault(System.IO.Path.GetExtension(name), "application/octet-stream");
            files[name] = new File(bytes, type, new EntityTagHeaderValue($"\"{Convert.ToHexStringLower(SHA256.HashData(bytes))[..16]}\"").ToString());
        }
        return files.ToFrozenDictionary(StringComparer.Ordinal);
    }
}

/// <summary>
/// The store's figures for the console's overview (a reading of its own, fresher than the metrics'):
/// read in the background at most every <see cref="MaxAge"/>, and only while someone looks.
/// </summary>
internal sealed class ConsoleFigures(StoreFigures store)
{
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(2);

    public StoreFigures Store { get; } = store;
}
