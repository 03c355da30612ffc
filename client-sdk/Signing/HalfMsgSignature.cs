using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace HalfMsgBroker.Client;

/// <summary>Result of verifying a signed broker call.</summary>
public enum SignatureVerification
{
    /// <summary>A <c>v2=</c> (or, where accepted, a <c>v1=</c>) value matches a known secret and the timestamp is recent.</summary>
    Valid,
    /// <summary>The signature or timestamp header is absent.</summary>
    Missing,
    /// <summary>A header could not be parsed.</summary>
    Malformed,
    /// <summary>The timestamp is outside the tolerance (replay or clock skew).</summary>
    Stale,
    /// <summary>No accepted value matches any known secret (for <c>v2=</c>: with this URL and message id).</summary>
    Mismatch,
    /// <summary>The call carries only <c>v1=</c> values and this receiver accepts <c>v2=</c> only.</summary>
    V1NotAccepted,
}

/// <summary>
/// Computes and verifies <c>HalfMsg-Signature</c>: comma-separated values, one per secret the broker
/// signs with, each <c>v1=&lt;hex HMAC-SHA256 of "{timestamp}.{raw body}"&gt;</c> (broker-wide secrets only)
/// or <c>v2=&lt;hex HMAC-SHA256 of "{timestamp}.{messageId}.{url}.{raw body}"&gt;</c>, where <c>url</c> is the
/// check or push URL as registered with the broker and <c>messageId</c> the <c>HalfMsg-Message-Id</c> header.
/// v2 binds a signature to one receiver and one message: it does not verify when replayed to another URL.
/// The HMAC key is the UTF-8 bytes of the secret text (for a broker-generated secret, <c>whsec_…</c> as a whole).
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
        return Hmac(secret, V1Prefix(timestamp), body);
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

    /// <summary>Computes the lowercase hex HMAC-SHA256 of <c>"{timestamp}.{messageId}.{url}.{body}"</c> (a <c>v2=</c> value).</summary>
    /// <param name="secret">The shared secret.</param>
    /// <param name="timestamp">Unix seconds.</param>
    /// <param name="messageId">The message the call is about (<c>HalfMsg-Message-Id</c>).</param>
    /// <param name="url">The URL the broker called, exactly as registered with it.</param>
    /// <param name="body">The raw request body.</param>
    /// <returns>64 lowercase hex characters.</returns>
    public static string ComputeV2(string secret, long timestamp, string messageId, string url, ReadOnlySpan<byte> body)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        ArgumentNullException.ThrowIfNull(messageId);
        ArgumentNullException.ThrowIfNull(url);
        return Hmac(secret, V2Prefix(timestamp, messageId, url), body);
    }

    /// <summary>Builds a header value <c>v2=&lt;hex&gt;,v2=&lt;hex&gt;</c>, one per secret in order.</summary>
    /// <param name="secrets">The secrets.</param>
    /// <param name="timestamp">Unix seconds.</param>
    /// <param name="messageId">The message id.</param>
    /// <param name="url">The URL as registered with the broker.</param>
    /// <param name="body">The raw body.</param>
    /// <returns>The header value.</returns>
    public static string CreateV2HeaderValue(IEnumerable<string> secrets, long timestamp, string messageId, string url, ReadOnlySpan<byte> body)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        var parts = new List<string>();
        foreach (var secret in secrets)
        {
            parts.Add("v2=" + ComputeV2(secret, timestamp, messageId, url, body));
        }

        return string.Join(',', parts);
    }

    /// <summary>Verifies a signed call by its <c>v1=</c> values only (receivers that do not know the URL and message id).</summary>
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
        DateTimeOffset now) =>
        Verify(signatureHeader, timestampHeader, body, null, secrets, tolerance, now, acceptV1: true);

    /// <summary>
    /// Verifies a signed call: valid when any <c>v2=</c> value (or, when <paramref name="acceptV1"/>, any
    /// <c>v1=</c> value) matches one of <paramref name="secrets"/> and the timestamp is within <paramref name="tolerance"/>.
    /// </summary>
    /// <param name="signatureHeader">The <c>HalfMsg-Signature</c> value.</param>
    /// <param name="timestampHeader">The <c>HalfMsg-Timestamp</c> value.</param>
    /// <param name="body">The raw body, exactly as received.</param>
    /// <param name="messageId">The <c>HalfMsg-Message-Id</c> value.</param>
    /// <param name="url">The URL the broker called, as registered with it (see the SDK README, "Signatures").</param>
    /// <param name="secrets">Every secret this receiver accepts.</param>
    /// <param name="tolerance">How far the timestamp may be from <paramref name="now"/> either way.</param>
    /// <param name="now">The current time.</param>
    /// <param name="acceptV1">Whether <c>v1=</c> values (which bind neither URL nor message) count.</param>
    /// <returns><see cref="SignatureVerification.Valid"/> or why not.</returns>
    public static SignatureVerification Verify(
        string? signatureHeader,
        string? timestampHeader,
        ReadOnlySpan<byte> body,
        string messageId,
        string url,
        IReadOnlyCollection<string> secrets,
        TimeSpan tolerance,
        DateTimeOffset now,
        bool acceptV1 = true)
    {
        ArgumentNullException.ThrowIfNull(messageId);
        ArgumentNullException.ThrowIfNull(url);
        return Verify(signatureHeader, timestampHeader, body, (messageId, url), secrets, tolerance, now, acceptV1);
    }

    private static SignatureVerification Verify(
        string? signatureHeader,
        string? timestampHeader,
        ReadOnlySpan<byte> body,
        (string MessageId, string Url)? target,
        IReadOnlyCollection<string> secrets,
        TimeSpan tolerance,
        DateTimeOffset now,
        bool acceptV1)
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

        var v1 = new List<byte[]>();
        var v2 = new List<byte[]>();
        foreach (var part in signatureHeader.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var list = part.StartsWith("v1=", StringComparison.Ordinal) ? v1
                : part.StartsWith("v2=", StringComparison.Ordinal) && target is not null ? v2
                : null;
            if (list is null)
            {
                continue; // other schemes (or v2 where the caller cannot check it) are ignored
            }

            try
            {
                list.Add(Convert.FromHexString(part.AsSpan(3)));
            }
            catch (FormatException)
            {
                return SignatureVerification.Malformed;
            }
        }

        if (!acceptV1 && v2.Count == 0 && v1.Count > 0)
        {
            return SignatureVerification.V1NotAccepted;
        }

        if (!acceptV1)
        {
            v1.Clear();
        }

        if (v1.Count == 0 && v2.Count == 0)
        {
            return SignatureVerification.Malformed;
        }

        long nowSeconds = now.ToUnixTimeSeconds();
        if (Math.Abs(nowSeconds - timestamp) > (long)tolerance.TotalSeconds)
        {
            return SignatureVerification.Stale;
        }

        var v1Prefix = V1Prefix(timestamp);
        var v2Prefix = target is { } t ? V2Prefix(timestamp, t.MessageId, t.Url) : null;
        foreach (var secret in secrets)
        {
            if (string.IsNullOrEmpty(secret))
            {
                continue;
            }

            if (Matches(v2, secret, v2Prefix, body) || Matches(v1, secret, v1Prefix, body))
            {
                return SignatureVerification.Valid;
            }
        }

        return SignatureVerification.Mismatch;
    }

    private static bool Matches(List<byte[]> candidates, string secret, byte[]? prefix, ReadOnlySpan<byte> body)
    {
        if (candidates.Count == 0 || prefix is null)
        {
            return false;
        }

        var expected = Convert.FromHexString(Hmac(secret, prefix, body));
        foreach (var candidate in candidates)
        {
            if (CryptographicOperations.FixedTimeEquals(expected, candidate))
            {
                return true;
            }
        }

        return false;
    }

    private static byte[] V1Prefix(long timestamp) =>
        Encoding.UTF8.GetBytes(timestamp.ToString(CultureInfo.InvariantCulture) + ".");

    private static byte[] V2Prefix(long timestamp, string messageId, string url) =>
        Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{timestamp}.{messageId}.{url}."));

    private static string Hmac(string secret, byte[] prefix, ReadOnlySpan<byte> body)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, Encoding.UTF8.GetBytes(secret));
        hmac.AppendData(prefix);
        hmac.AppendData(body);
        return Convert.ToHexStringLower(hmac.GetHashAndReset());
    }
}
