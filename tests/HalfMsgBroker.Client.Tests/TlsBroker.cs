using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace HalfMsgBroker.Client.Tests;

/// <summary>
/// The broker as its own process (as it runs in production), told by nothing but Kestrel's configuration keys
/// to serve HTTPS from a PFX file on one loopback port, next to the usual HTTP/1.1 endpoint on another.
/// </summary>
public sealed class TlsBroker : IAsyncDisposable
{
    private const string Password = "pfx-password-for-tests";

    private readonly Process _process;
    private readonly string _folder;
    private readonly ConcurrentQueue<string> _output;

    private TlsBroker(Process process, string folder, ConcurrentQueue<string> output, Uri https, Uri http)
    {
        _process = process;
        _folder = folder;
        _output = output;
        HttpsAddress = https;
        HttpAddress = http;
    }

    public Uri HttpsAddress { get; }

    public Uri HttpAddress { get; }

    private string CertificatePath => Path.Combine(_folder, "broker.pfx");

    public static async Task<TlsBroker> StartAsync(X509Certificate2 certificate)
    {
        var folder = Path.Combine(Path.GetTempPath(), "halfmsg-tls-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(folder, "data"));
        WritePfx(certificate, Path.Combine(folder, "broker.pfx"));
        var https = new Uri($"https://127.0.0.1:{FreePort()}/");
        var http = new Uri($"http://127.0.0.1:{FreePort()}/");

        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(BrokerDll());
        info.ArgumentList.Add($"--Broker:DataPath={Path.Combine(folder, "data")}");
        info.ArgumentList.Add("--Logging:LogLevel:Default=Warning");
        info.ArgumentList.Add($"--Kestrel:Endpoints:Http:Url={http}");
        info.ArgumentList.Add($"--Kestrel:Endpoints:Https:Url={https}");
        info.ArgumentList.Add($"--Kestrel:Endpoints:Https:Certificate:Path={Path.Combine(folder, "broker.pfx")}");
        info.ArgumentList.Add($"--Kestrel:Endpoints:Https:Certificate:Password={Password}");

        var output = new ConcurrentQueue<string>();
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var broker = new TlsBroker(process, folder, output, https, http);

        var pin = certificate.GetCertHashString(HashAlgorithmName.SHA256);
        using var probe = new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = PinnedCertificate.Trust(pin) })
        {
            BaseAddress = https,
            Timeout = TimeSpan.FromSeconds(10),
        };
        await Eventually.UntilAsync(
            async () =>
            {
                if (process.HasExited) Assert.Fail($"broker exited with {process.ExitCode}:\n{broker.Output}");
                try
                {
                    using var response = await probe.GetAsync(new Uri("health/ready", UriKind.Relative));
                    return response.StatusCode;
                }
                catch (HttpRequestException)
                {
                    return HttpStatusCode.ServiceUnavailable;
                }
            },
            s => s == HttpStatusCode.OK,
            "the broker ready over https",
            TimeSpan.FromSeconds(60));
        return broker;
    }

    public string Output => string.Join('\n', _output);

    /// <summary>Replaces the certificate file the way a renewal should: written next to it, then renamed over it.</summary>
    public void ReplaceCertificate(X509Certificate2 certificate)
    {
        var next = CertificatePath + ".next";
        WritePfx(certificate, next);
        File.Move(next, CertificatePath, overwrite: true);
    }

    /// <summary>The certificate a new TLS connection to <paramref name="address"/> is given; null when none could be made.</summary>
    public static async Task<string?> PresentedThumbprintAsync(Uri address)
    {
        string? seen = null;
        using var client = new HttpClient(new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, certificate, _, _) =>
            {
                seen = certificate?.GetCertHashString(HashAlgorithmName.SHA256);
                return true; // only looking: a loopback test broker
            },
        });
        try
        {
            using var _ = await client.GetAsync(new Uri(address, "health/live"));
            return seen;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static void WritePfx(X509Certificate2 certificate, string path) =>
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pkcs12, Password));

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The broker's own build output (same configuration as the tests), found from the solution root.</summary>
    private static string BrokerDll()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        var configuration = dir.Parent!.Name; // …/bin/{Configuration}/net10.0/
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "HalfMsgBroker.sln"))) dir = dir.Parent;
        if (dir is null) throw new InvalidOperationException("HalfMsgBroker.sln not found above " + AppContext.BaseDirectory);
        return Path.Combine(dir.FullName, "broker", "bin", configuration, "net10.0", "HalfMsgBroker.Broker.dll");
    }
}

public static class TestCertificates
{
    /// <summary>A self-signed server certificate for localhost, 127.0.0.1 and ::1, valid for a day.</summary>
    public static X509Certificate2 CreateSelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        names.AddIpAddress(IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1", "Server Authentication")], false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
    }
}

/// <summary>The certificate check the README shows for a broker with a self-signed certificate.</summary>
public static class PinnedCertificate
{
    /// <summary>
    /// Trusts exactly the certificates with these SHA-256 thumbprints (list the old and the new one while
    /// rotating), in place of a CA; the host name must still match the certificate.
    /// </summary>
    public static Func<HttpRequestMessage, X509Certificate2?, X509Chain?, SslPolicyErrors, bool> Trust(params string[] sha256Thumbprints) =>
        (_, certificate, _, errors) =>
            certificate is not null
            && (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) == SslPolicyErrors.None
            && sha256Thumbprints.Contains(certificate.GetCertHashString(HashAlgorithmName.SHA256), StringComparer.OrdinalIgnoreCase);
}
