using HalfMsgBroker.Configuration;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Outbound;

/// <summary>
/// Broker:Outbound:AllowedHosts as a list (appsettings arrays, <c>AllowedHosts__0</c>) or as one
/// string (<c>Broker__Outbound__AllowedHosts="a.example.com;*.example.org"</c>). The binder fills a
/// list only from the first form and silently drops the second, which would leave the list empty —
/// "any host" — so the string form is added here; an entry that is not a host pattern stops start-up.
/// </summary>
internal static class OutboundOptionsSetup
{
    public static void Register(IServiceCollection services)
    {
        services.AddOptions<BrokerOptions>().PostConfigure<IConfiguration>((o, configuration) =>
        {
            var single = configuration[$"{BrokerOptions.Section}:Outbound:AllowedHosts"];
            if (!string.IsNullOrWhiteSpace(single)) o.Outbound.AllowedHosts.Add(single);
        });
        services.AddSingleton<IValidateOptions<BrokerOptions>, Validation>();
    }

    private sealed class Validation : IValidateOptions<BrokerOptions>
    {
        public ValidateOptionsResult Validate(string? name, BrokerOptions options)
        {
            AllowedHosts.Parse(options.Outbound.AllowedHosts, out var invalid);
            return invalid.Count == 0
                ? ValidateOptionsResult.Success
                : ValidateOptionsResult.Fail(
                    $"Broker:Outbound:AllowedHosts: '{string.Join("', '", invalid)}' is not a host name (example.com), a *. pattern (*.example.com) or an IP address; give no scheme, port or path");
        }
    }
}
