using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Hosting;

/// <summary>
/// Turns an invalid option into what an operator acts on: one line per failed check, with the value it has and where
/// that value was set (command line, environment, which file), instead of an unhandled exception's stack trace.
/// </summary>
internal static partial class InvalidConfiguration
{
    /// <summary>One line per failure, e.g. <c>Broker:Storage:ApplyDelay must be between 0 and 10 seconds (Broker:Storage:ApplyDelay=00:01:00, from the command line)</c>.</summary>
    public static IReadOnlyList<string> Describe(OptionsValidationException error, IConfiguration configuration)
    {
        var lines = new List<string>();
        foreach (var failure in error.Failures)
        {
            var settings = KeysNamedIn(failure, configuration).Select(key => Setting(key, configuration)).OfType<string>().ToList();
            lines.Add(settings.Count == 0 ? $"{failure} (not set: the default applies)" : $"{failure} ({string.Join("; ", settings)})");
        }
        return lines;
    }

    // Checks name their option by its full path first and may name siblings in the same section by their last part
    // ("Broker:Transactions:CheckAfter must be >= 0 and CheckInterval > 0").
    private static IEnumerable<string> KeysNamedIn(string failure, IConfiguration configuration)
    {
        var first = FullKey().Match(failure);
        if (!first.Success) yield break;
        yield return first.Value;
        var section = first.Value[..first.Value.LastIndexOf(':')];
        foreach (Match word in OptionName().Matches(failure[first.Length..]))
        {
            var sibling = section + ":" + word.Value;
            if (configuration[sibling] is not null) yield return sibling;
        }
    }

    private static string? Setting(string key, IConfiguration configuration)
    {
        if (configuration is not IConfigurationRoot root) return configuration[key] is { } v ? $"{key}={v}" : null;
        // The last provider that has the key is the one whose value counts.
        foreach (var provider in root.Providers.Reverse())
        {
            if (provider.TryGet(key, out var value)) return $"{key}={value}, from {Source(provider, key)}";
        }
        return null;
    }

    private static string Source(IConfigurationProvider provider, string key) => provider switch
    {
        CommandLineConfigurationProvider => "the command line",
        EnvironmentVariablesConfigurationProvider => $"the environment variable {key.Replace(":", "__", StringComparison.Ordinal)}",
        FileConfigurationProvider file => $"the file {file.Source.Path}",
        _ => provider.ToString() ?? provider.GetType().Name,
    };

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9]*(:[A-Za-z][A-Za-z0-9]*)+")]
    private static partial Regex FullKey();

    [GeneratedRegex(@"\b[A-Z][A-Za-z0-9]+\b")]
    private static partial Regex OptionName();
}
