using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Client;

/// <summary>
/// Settings of a transactional producer (<c>AddTransactionalProducer</c>): its producer group and where the
/// broker sends its check-backs. Bind them from configuration or set them in code; validated at start.
/// </summary>
/// <remarks>
/// The check URL is written once: by default it is <see cref="HalfMsgClientOptions.PublicBaseAddress"/>
/// followed by the route of the app's <c>MapHalfMsgCheck</c> endpoint. Set <see cref="CheckUrl"/> only when the
/// check endpoint is not this app's.
/// </remarks>
public sealed class TransactionalProducerOptions
{
    /// <summary>The producer group. Required.</summary>
    public string? ProducerGroup { get; set; }

    /// <summary>
    /// The absolute check URL, when it is not derived: e.g. a check endpoint served by another process.
    /// Null (the default): <see cref="HalfMsgClientOptions.PublicBaseAddress"/> + the check route.
    /// </summary>
    public Uri? CheckUrl { get; set; }

    /// <summary>
    /// The route of the check endpoint to use, when the app maps more than one with <c>MapHalfMsgCheck</c>
    /// (e.g. <c>/halfmsg/check</c>). Null: the one check endpoint the app maps.
    /// </summary>
    public string? CheckPath { get; set; }

    /// <summary>How long the broker waits for a check answer (100 ms to 60 s); null for the broker's 3 s.</summary>
    public TimeSpan? CheckTimeout { get; set; }

    /// <summary>
    /// End transactions as RocketMQ's producer does (<c>endTransactionOneway</c>): send the commit or rollback and return
    /// without waiting for the broker's answer. Default false: wait for it. See <see cref="TransactionalProducer.EndOneWay"/>.
    /// </summary>
    public bool EndOneWay { get; set; }
}

/// <summary>Checks <see cref="TransactionalProducerOptions"/> when the host starts.</summary>
internal sealed class TransactionalProducerOptionsValidator : IValidateOptions<TransactionalProducerOptions>
{
    public ValidateOptionsResult Validate(string? name, TransactionalProducerOptions options)
    {
        var where = $"Transactional producer '{name}': ";
        var errors = new List<string>();
        if (string.IsNullOrEmpty(options.ProducerGroup))
        {
            errors.Add(where + "ProducerGroup is required.");
        }

        if (options.CheckUrl is { } url && (!url.IsAbsoluteUri || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps)))
        {
            errors.Add(where + $"CheckUrl must be an absolute http:// or https:// URL (got '{url}'); or leave it out to derive it from PublicBaseAddress and MapHalfMsgCheck's route.");
        }

        if (options.CheckPath is { } path && !path.StartsWith('/'))
        {
            errors.Add(where + $"CheckPath must be a route starting with '/', as mapped by MapHalfMsgCheck (got '{path}').");
        }

        if (options.CheckTimeout is { } timeout && (timeout < HalfMsgLimits.MinCallTimeout || timeout > HalfMsgLimits.MaxCallTimeout))
        {
            errors.Add(where + $"CheckTimeout must be between 100 ms and 60 s, the broker's limits (got {timeout}).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
