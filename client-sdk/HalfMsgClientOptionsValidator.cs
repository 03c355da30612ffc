using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Client;

/// <summary>Checks <see cref="HalfMsgClientOptions"/> when the host starts, with messages that say what to set.</summary>
internal sealed class HalfMsgClientOptionsValidator : IValidateOptions<HalfMsgClientOptions>
{
    public ValidateOptionsResult Validate(string? name, HalfMsgClientOptions o)
    {
        var errors = new List<string>();
        if (o.BaseAddress is not { IsAbsoluteUri: true })
        {
            errors.Add("HalfMsgClientOptions.BaseAddress (HalfMsg:BaseAddress) is required: the broker's absolute URL, e.g. http://broker:8080.");
        }

        if (o.AttemptTimeout <= HalfMsgLimits.MaxWaitTime)
        {
            errors.Add($"HalfMsgClientOptions.AttemptTimeout must exceed the longest long poll (30 s); got {o.AttemptTimeout}.");
        }

        if (o.TotalTimeout < o.AttemptTimeout)
        {
            errors.Add($"HalfMsgClientOptions.TotalTimeout ({o.TotalTimeout}) must be at least AttemptTimeout ({o.AttemptTimeout}).");
        }

        if (o.MaxRetryAttempts < 0)
        {
            errors.Add($"HalfMsgClientOptions.MaxRetryAttempts must not be negative (0 disables retries); got {o.MaxRetryAttempts}.");
        }

        if (o.RetryDelay < TimeSpan.Zero)
        {
            errors.Add($"HalfMsgClientOptions.RetryDelay must not be negative; got {o.RetryDelay}.");
        }

        if (o.SignatureTolerance <= TimeSpan.Zero)
        {
            errors.Add($"HalfMsgClientOptions.SignatureTolerance must be positive; got {o.SignatureTolerance}.");
        }

        if (!o.ApiKeyIsWellFormed)
        {
            errors.Add("HalfMsgClientOptions.ApiKey must be the key exactly as the broker issued it: visible ASCII, without spaces or line breaks (a key read from a file may end in a newline).");
        }

        if (o.RequiresUnverifiableSignature)
        {
            errors.Add("HalfMsgClientOptions.RequireSignature is true but SigningSecrets is empty: the check and push endpoints would refuse every call. Configure the secret (the signingSecret the broker returned, or Broker:Signing:Secret).");
        }

        if (o.PublicBaseAddress is { } publicBase && (!publicBase.IsAbsoluteUri || (publicBase.Scheme != Uri.UriSchemeHttp && publicBase.Scheme != Uri.UriSchemeHttps)))
        {
            errors.Add($"HalfMsgClientOptions.PublicBaseAddress (HalfMsg:PublicBaseAddress) must be an absolute http:// or https:// URL, e.g. http://orders:8080; got '{publicBase}'.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
