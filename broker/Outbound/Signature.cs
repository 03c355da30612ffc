using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace HalfMsgBroker.Outbound;

/// <summary>
/// The <c>HalfMsg-Signature</c> header: every applicable signature, comma-separated.
/// <list type="bullet">
/// <item><c>v1=&lt;hex HMAC-SHA256 of "{timestamp}.{raw body}"&gt;</c> per broker-wide secret (unchanged, for existing receivers);</item>
/// <item><c>v2=&lt;hex HMAC-SHA256 of "{timestamp}.{messageId}.{url}.{raw body}"&gt;</c> per broker-wide secret, then per
/// receiver secret (current, then previous during a rotation). <c>url</c> is the registered checkUrl or push.url,
/// character for character, so a call signed for one receiver does not verify at another URL.</item>
/// </list>
/// Keys are the UTF-8 bytes of the secret text; hex is lowercase.
/// </summary>
public static class Signature
{
    public const string TimestampHeader = "HalfMsg-Timestamp";
    public const string SignatureHeader = "HalfMsg-Signature";

    /// <summary>The header value for one call, or null when there is nothing to sign with.</summary>
    internal static string? Header(CallSigning signing, string url, long timestamp, ReadOnlySpan<byte> body)
    {
        if (signing.IsEmpty) return null;
        var parts = new List<string>(signing.BrokerSecrets.Count * 2 + signing.ReceiverSecrets.Count);
        var v1Prefix = Encoding.UTF8.GetBytes(timestamp.ToString(CultureInfo.InvariantCulture) + ".");
        var v2Prefix = V2Prefix(timestamp, signing.MessageId, url);
        foreach (var secret in signing.BrokerSecrets) parts.Add("v1=" + Hmac(secret, v1Prefix, body));
        foreach (var secret in signing.BrokerSecrets) parts.Add("v2=" + Hmac(secret, v2Prefix, body));
        foreach (var secret in signing.ReceiverSecrets) parts.Add("v2=" + Hmac(secret, v2Prefix, body));
        return string.Join(',', parts);
    }

    private static byte[] V2Prefix(long timestamp, string messageId, string url) =>
        Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{timestamp}.{messageId}.{url}."));

    // Incremental, so a body of several MB is hashed in place rather than copied behind its prefix per secret.
    private static string Hmac(string secret, byte[] prefix, ReadOnlySpan<byte> body)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, Encoding.UTF8.GetBytes(secret));
        hmac.AppendData(prefix);
        hmac.AppendData(body);
        return Convert.ToHexStringLower(hmac.GetHashAndReset());
    }
}
