using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HalfMsgBroker.Configuration;
using HalfMsgBroker.Tests.Support;

namespace HalfMsgBroker.Tests.Deploy;

/// <summary>
/// The nginx configuration of the compose profile "postgres" (deploy/nginx/halfmsg.conf) against the
/// broker it fronts. No nginx runs here; these keep the file from drifting away from the broker's
/// limits, ports and the retry rule docs/scaling-out.md promises.
/// </summary>
public sealed partial class LoadBalancerConfigTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    private static readonly string Root = FindRoot();
    private static readonly string Nginx = File.ReadAllText(Path.Combine(Root, "deploy", "nginx", "halfmsg.conf"));

    [Fact]
    public void Nginx_takes_bodies_up_to_exactly_the_brokers_MaxMessageBytes()
    {
        var value = Directive("client_max_body_size");
        var bytes = long.Parse(value[..^1], CultureInfo.InvariantCulture) * (char.ToLowerInvariant(value[^1]) switch
        {
            'k' => 1024L,
            'm' => 1024L * 1024,
            var unit => throw new Xunit.Sdk.XunitException($"unexpected unit '{unit}' in client_max_body_size {value}"),
        });
        Assert.Equal(new BrokerOptions().MaxMessageBytes, bytes);
    }

    [Fact]
    public async Task Nginx_waits_at_least_10_s_longer_than_any_receive_the_broker_accepts()
    {
        var readTimeout = Seconds(Directive("proxy_read_timeout"));
        var (group, topic) = ("g-" + Guid.NewGuid().ToString("N")[..8], "t-" + Guid.NewGuid().ToString("N")[..8]);
        await broker.Client.Subscribe(group, topic);

        // The wait range is checked as one interval, so refusing this wait refuses every longer one.
        var answer = await broker.Client.Post($"/v1/consumer-groups/{group}/topics/{topic}/receive", new { waitSeconds = readTimeout - 10 });
        Assert.Equal(HttpStatusCode.BadRequest, answer.Status);
        Assert.Equal("invalid-field", answer.Code);
        Assert.Contains("waitSeconds", answer.Raw, StringComparison.Ordinal);
    }

    [Fact]
    public void Nginx_passes_a_request_on_only_when_no_broker_can_have_received_it()
    {
        var conditions = Directive("proxy_next_upstream").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("error", conditions); // the standby refuses connections: try the other server
        Assert.DoesNotContain("non_idempotent", conditions);
    }

    [Fact]
    public void Nginx_upstreams_are_the_compose_postgres_brokers_on_the_images_http1_port()
    {
        var dockerfile = File.ReadAllText(Path.Combine(Root, "Dockerfile"));
        var http1Port = HttpPortInDockerfile().Match(dockerfile).Groups[1].Value;
        var compose = File.ReadAllText(Path.Combine(Root, "compose.yaml"));

        var servers = UpstreamServer().Matches(Nginx).Select(m => (Host: m.Groups[1].Value, Port: m.Groups[2].Value)).ToList();
        Assert.Equal(2, servers.Count);
        foreach (var (host, port) in servers)
        {
            Assert.Equal(http1Port, port);
            Assert.Matches(new Regex($"(?m)^  {Regex.Escape(host)}:"), compose);
        }
        Assert.Contains("Broker__Storage__Provider: PostgreSql", compose, StringComparison.Ordinal);
    }

    [Fact]
    public void Nginxs_own_errors_are_problem_details_like_the_brokers()
    {
        var returns = ProblemReturn().Matches(Nginx);
        Assert.Equal(3, returns.Count);
        foreach (Match r in returns)
        {
            var status = int.Parse(r.Groups[1].Value, CultureInfo.InvariantCulture);
            var problem = JsonNode.Parse(r.Groups[2].Value.Replace("\\'", "'", StringComparison.Ordinal))!;
            var code = problem["code"]!.GetValue<string>();
            Assert.Equal(status, problem["status"]!.GetValue<int>());
            Assert.Equal("https://halfmsgbroker.dev/problems/" + code, problem["type"]!.GetValue<string>());
            Assert.False(string.IsNullOrWhiteSpace(problem["detail"]?.GetValue<string>()));
        }
    }

    /// <summary>The value of a directive that occurs once, without its semicolon.</summary>
    private static string Directive(string name)
    {
        var matches = Regex.Matches(Nginx, $@"(?m)^\s*{Regex.Escape(name)}\s+([^;]+);");
        return Assert.Single(matches).Groups[1].Value.Trim();
    }

    private static int Seconds(string value) =>
        value.EndsWith('s') ? int.Parse(value[..^1], CultureInfo.InvariantCulture) : throw new Xunit.Sdk.XunitException($"expected seconds, got {value}");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "HalfMsgBroker.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("HalfMsgBroker.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"Kestrel__Endpoints__Http__Url=http://\+:(\d+)")]
    private static partial Regex HttpPortInDockerfile();

    [GeneratedRegex(@"(?m)^\s*server\s+([a-z0-9-]+):(\d+)\b")]
    private static partial Regex UpstreamServer();

    [GeneratedRegex(@"return\s+(\d{3})\s+'((?:[^'\\]|\\.)*)';")]
    private static partial Regex ProblemReturn();
}
