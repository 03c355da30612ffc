using HalfMsgBroker.Hosting;
using HalfMsgBroker.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Tests.Hosting;

/// <summary>
/// An invalid option refuses the start with one line an operator can act on (the check, the value, where it was set)
/// and an exit code of its own, not an unhandled exception's stack trace.
/// </summary>
[Trait("Storage", "LiteDb")]
public sealed class InvalidConfigurationTests : IDisposable
{
    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "halfmsg-options", Guid.NewGuid().ToString("N"));

    public void Dispose() => BrokerFactory.TryDelete(_dataPath);

    [Fact]
    public async Task The_broker_process_names_the_option_its_value_and_the_command_line_and_exits_with_its_code()
    {
        var (exitCode, output) = await BrokerProcess.RunToExit(_dataPath, "--Broker:Storage:ApplyDelay=00:01:00");

        Assert.Equal(BrokerExit.InvalidConfiguration, exitCode);
        Assert.Contains(
            "The broker cannot start: Broker:Storage:ApplyDelay must be between 0 and 10 seconds (Broker:Storage:ApplyDelay=00:01:00, from the command line)",
            output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Each_failure_names_every_option_it_mentions_that_is_set_and_where_the_last_setting_came_from()
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Broker:Transactions:CheckInterval"] = "00:00:05" })
            .AddCommandLine(["--Broker:Transactions:CheckAfter=-00:00:01", "--Broker:Transactions:CheckInterval=00:00:00"])
            .Build();
        var error = new OptionsValidationException("", typeof(object), [
            "Broker:Transactions:CheckAfter must be >= 0 and CheckInterval > 0",
            "Broker:MaxMessageBytes must be at least 1024",
        ]);

        var lines = InvalidConfiguration.Describe(error, configuration);

        Assert.Equal(
            [
                "Broker:Transactions:CheckAfter must be >= 0 and CheckInterval > 0 (Broker:Transactions:CheckAfter=-00:00:01, from the command line; Broker:Transactions:CheckInterval=00:00:00, from the command line)",
                "Broker:MaxMessageBytes must be at least 1024 (not set: the default applies)",
            ],
            lines);
    }
}
