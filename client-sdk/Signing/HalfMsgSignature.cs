using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace HalfMsgBroker.Client;

/// <summary>Result of verifying a signed broker call.</summary>
public enum SignatureVerification
{
    /// <summary>A <c>v1=</c> value matches a known secret and the timestamp is recent.</summary>
    Valid,
    /// <summary>The signature or timestamp header is absent.</summary>
    Missing,
    /// <summary>A header could not be parsed.</summary>
    Malformed,
    /// <summary>The timestamp is outside the tolerance (replay or clock skew).</summary>
    Stale,
    /// <summary>No <c>v1=</c> value matches any known secret.</summary>
    Mismatch,
}

/// <summary>
/// Computes and verifies <c>HalfMsg-Signature: v1=&lt;hex HMAC-SHA256 of "{timestamp}.{raw body}"&gt;</c>
/// (comma-separated, one per secret, for key rotation).
/// </summary>
public static class HalfMsgSignature
{
    /// <summary>The tolerance the SDK applies to <c>HalfMsg-Timestamp</c> by default: 5 minutes.</summary>
    public static readonly TimeSpan DefaultTolerance = TimeSpan.FromMinutes(5);

    /// <summary>Computes the lowercase hex HMAC-SHA256 of <c>"{timestamp}.{body}"</c>.</summary>
    /// <param name="secret">The shared secret.</param>
    /// <param name="timestamp">Unix seconds.</param>
    /// <param name="body">The raw request body.</param>
    /// <returns>64 lowercase hex characters.</returns>
    public static string Compute(string secret, long timestamp, ReadOnlySpan<byte> body)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        var prefix = Encoding.ASCII.GetBytes(timestamp.ToString(CultureInfo.InvariantCulture) + ".");
        var payload = new byte[prefix.Length + body.Length];
        prefix.CopyTo(payload, 0);
        body.CopyTo(payload.AsSpan(prefix.Length));
        var mac = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), payload);
        return Convert.ToHexStringLower(mac);
    }

    /// <summary>Builds a header value <c>v1=&lt;hex&gt;,v1=&lt;hex&gt;</c>, one per secret in order.</summary>
    /// <param name="secrets">The secrets.</param>
    /// <param name="timestamp">Unix seconds.</param>
    /// <param name="body">The raw body.</param>
    /// <returns>The header value.</returns>
    public static string CreateHeaderValue(IEnumerable<string> secrets, long timestamp, ReadOnlySpan<byte> body)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        var parts = new List<string>();
        foreach (var secret in secrets)
        {
            parts.Add("v1=" + Compute(secret, timestamp, body));
        }

        return string.Join(',', parts);
    }

    /// <summary>Verifies a signed call.</summary>
    /// <param name="signatureHeader">The <c>HalfMsg-Signature</c> value.</param>
    /// <param name="timestampHeader">The <c>HalfMsg-Timestamp</c> value.</param>
    /// <param name="body">The raw body, exactly as received.</param>
    /// <param name="secrets">Every secret this receiver accepts.</param>
    /// <param name="tolerance">How far the timestamp may be from <paramref name="now"/> either way.</param>
    /// <param name="now">The current time.</param>
    /// <returns><see cref="SignatureVerification.Valid"/> or why not.</returns>
    public static SignatureVerification Verify(
        string? signatureHeader,
        string? timestampHeader,
        ReadOnlySpan<byte> body,
        IReadOnlyCollection<string> secrets,
        TimeSpan tolerance,
        DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        if (string.IsNullOrWhiteSpace(signatureHeader) || string.IsNullOrWhiteSpace(timestampHeader))
        {
            return SignatureVerification.Missing;
        }

        if (!long.TryParse(timestampHeader.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var timestamp))
        {
            return SignatureVerification.Malformed;
        }

        var candidates = new List<byte[]>();
        foreach (var part in signatureHeader.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!part.StartsWith("v1=", StringComparison.Ordinal))
            {
                continue; // other schemes may come later; ignore them
            }

            try
            {
                candidates.Add(Convert.FromHexString(part.AsSpan(3)));
            }
            catch (FormatException)
            {
                return SignatureVerification.Malformed;
            }
        }

        if (candidates.Count == 0)
        {
            return SignatureVerification.Malformed;
        }

        long nowSeconds = now.ToUnixTimeSeconds();
        if (Math.Abs(nowSeconds - timestamp) > (long)tolerance.TotalSeconds)
        {
            return SignatureVerification.Stale;
        }

        foreach (var secret in secrets)
        {
            if (string.IsNullOrEmpty(secret))
            {
                continue;
            }

            var expected = Convert.FromHexString(Compute(secret, timestamp, body));
            foreach (var candidate in candidates)
            {
                if (CryptographicOperations.FixedTimeEquals(expected, candidate))
                {
                    return SignatureVerification.Valid;
                }
            }
        }

        return SignatureVerification.Mismatch;
    }
}
