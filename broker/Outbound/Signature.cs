using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace HalfMsgBroker.Outbound;

/// <summary>
/// <c>HalfMsg-Signature: v1=&lt;hex HMAC-SHA256 of "{timestamp}.{raw body}"&gt;</c>, one <c>v1=</c>
/// per configured secret so receivers can rotate keys without a flag day.
/// </summary>
public static class Signature
{
    public const string TimestampHeader = "HalfMsg-Timestamp";
    public const string SignatureHeader = "HalfMsg-Signature";

    public static string Compute(IReadOnlyList<string> secrets, long timestamp, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.UTF8.GetBytes(timestamp.ToString(CultureInfo.InvariantCulture) + ".");
        var signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));

        var parts = new string[secrets.Count];
        for (var i = 0; i < secrets.Count; i++)
        {
            var mac = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secrets[i]), signed);
            parts[i] = "v1=" + Convert.ToHexStringLower(mac);
        }
        return string.Join(',', parts);
    }
}
