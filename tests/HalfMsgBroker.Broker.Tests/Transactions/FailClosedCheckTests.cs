using System.Text;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Tests.Support;
using HalfMsgBroker.Transactions;

namespace HalfMsgBroker.Tests.Transactions;

/// <summary>
/// Only an explicit commit answer commits (issue 16, item 4; dtm#535 lost money to a 200 with an
/// error body). Every other shape a failing or misconfigured producer can send counts as unknown.
/// </summary>
public sealed class FailClosedCheckTests
{
    private static readonly string Huge = "{\"state\":\"commit\"}" + new string(' ', 70 * 1024);

    /// <summary>(name, status, body): each must not commit.</summary>
    public static readonly (string Name, int Status, string? Body)[] NotCommits =
    [
        ("empty body", 200, null),
        ("error object", 200, "{\"error\":\"db down\"}"),
        ("html", 200, "<html><body>{\"state\":\"commit\"}</body></html>"),
        ("trailing space", 200, "{\"state\": \"COMMIT \"}"),
        ("inside an array", 200, "[{\"state\": \"commit\", \"id\": 1}]"),
        ("null state", 200, "{\"state\": null}"),
        ("number state", 200, "{\"state\": 1}"),
        ("500 saying commit", 500, "{\"state\":\"commit\"}"),
        ("302 saying commit", 302, "{\"state\":\"commit\"}"),
        ("huge body", 200, Huge),
        ("invalid json", 200, "{\"state\":\"commit\""),
        ("capitalised name", 200, "{\"State\":\"commit\"}"),
        ("dotless i", 200, "{\"state\":\"comm\u0131t\"}"),
        ("duplicate state", 200, "{\"state\":\"rollback\",\"state\":\"commit\"}"),
        ("trailing text", 200, "{\"state\":\"commit\"} and more"),
        ("nested", 200, "{\"data\":{\"state\":\"commit\"}}"),
        ("a bare string", 200, "\"commit\""),
        ("bool state", 200, "{\"state\":true}"),
        ("object state", 200, "{\"state\":{\"value\":\"commit\"}}"),
    ];

    public static TheoryData<string> NotCommitNames => [.. NotCommits.Select(s => s.Name)];

    [Theory]
    [MemberData(nameof(NotCommitNames))]
    public void Only_an_explicit_commit_is_read_as_commit(string name)
    {
        var (_, status, body) = NotCommits.Single(s => s.Name == name);
        if (status != 200) return; // non-2xx answers never reach the reader (see the end-to-end test)
        Assert.NotEqual(CheckAnswer.Commit, CheckBackService.ReadAnswer(Encoding.UTF8.GetBytes(body ?? "")).Item1);
    }

    [Theory]
    [InlineData("{\"state\":\"commit\"}", CheckAnswer.Commit)]
    [InlineData("{\"state\":\"Commit\",\"note\":[1,{\"a\":2}]}", CheckAnswer.Commit)]
    [InlineData(" {\"state\":\"COMMIT_MESSAGE\"}\n", CheckAnswer.Commit)]
    [InlineData("{\"state\":\"commit_message\"}", CheckAnswer.Commit)]
    [InlineData("{\"state\":\"\\u0063ommit\"}", CheckAnswer.Commit)]
    [InlineData("{\"state\":\"ROLLBACK\"}", CheckAnswer.Rollback)]
    [InlineData("{\"state\":\"rollback_message\"}", CheckAnswer.Rollback)]
    [InlineData("{\"state\":\"UNKNOW\"}", CheckAnswer.Unknown)]
    public void What_the_contract_allows_still_reads(string body, CheckAnswer expected) =>
        Assert.Equal(expected, CheckBackService.ReadAnswer(Encoding.UTF8.GetBytes(body)).Item1);

    [Theory]
    [InlineData("{\"state\":\"unknown\",\"retryAfterSeconds\":30}", 30.0)]
    [InlineData("{\"retryAfterSeconds\":2.5,\"state\":\"UNKNOW\"}", 2.5)]
    [InlineData("{\"state\":\"unknown\",\"retryAfterSeconds\":0}", null)]
    [InlineData("{\"state\":\"unknown\",\"retryAfterSeconds\":-5}", null)]
    [InlineData("{\"state\":\"unknown\",\"retryAfterSeconds\":\"30\"}", null)]
    [InlineData("{\"state\":\"unknown\",\"retryAfterSeconds\":1e400}", null)]
    [InlineData("{\"state\":\"unknown\",\"retryAfterSeconds\":5,\"retryAfterSeconds\":6}", null)]
    [InlineData("{\"state\":\"maybe\",\"retryAfterSeconds\":30}", null)]
    public void Retry_after_is_read_only_from_an_unknown_answer_with_one_number_of_at_least_a_second(string body, double? seconds)
    {
        var (answer, _, retryAfter) = CheckBackService.ReadAnswer(Encoding.UTF8.GetBytes(body));
        Assert.Equal(CheckAnswer.Unknown, answer);
        Assert.Equal(seconds is { } s ? TimeSpan.FromSeconds(s) : null, retryAfter);
    }

    [Fact]
    public void A_commit_with_a_retry_after_still_commits_and_carries_no_wait() =>
        Assert.Equal((CheckAnswer.Commit, "commit", (TimeSpan?)null),
            CheckBackService.ReadAnswer("{\"state\":\"commit\",\"retryAfterSeconds\":30}"u8.ToArray()));

    [Fact]
    public async Task No_other_answer_shape_commits_end_to_end()
    {
        await using var factory = new BrokerFactory(new Dictionary<string, string?> { ["Broker:Transactions:MaxChecks"] = "2" });
        using var client = factory.CreateClient();
        var checkers = new List<TestReceiver>();
        try
        {
            var transactions = new List<(string Name, string Tx)>();
            // The control: the same path with the one right answer commits, so the test can fail.
            foreach (var (name, status, body) in NotCommits.Append(("control", 200, "{\"state\":\"commit\"}")))
            {
                var checker = await TestReceiver.Answering(status, body);
                checkers.Add(checker);
                var group = "pg-" + Guid.NewGuid().ToString("N")[..8];
                await client.Put($"/v1/producer-groups/{group}", new { checkUrl = checker.Url });
                var tx = "tx-" + Guid.NewGuid().ToString("N")[..8];
                await client.SendHalf("t-" + Guid.NewGuid().ToString("N")[..8], tx, group: group);
                transactions.Add((name, tx));
            }

            foreach (var (name, tx) in transactions)
            {
                var resolved = await Eventually.Until(() => client.Transaction(tx), t => t.Str("state") != "prepared", $"{name} resolved");
                if (name == "control")
                {
                    Assert.Equal("committed", resolved.Str("state"));
                    continue;
                }
                Assert.True(resolved.Str("state") == "rolledBack", $"{name}: {resolved.Str("state")}");
                Assert.Equal("checkExhausted", resolved.Str("resolvedBy"));
            }
        }
        finally
        {
            foreach (var checker in checkers) await checker.DisposeAsync();
        }
    }
}
