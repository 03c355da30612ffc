using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace HalfMsgBroker.Storage;

/// <summary>
/// The signing secret of one producer group or subscription, so a receiver can tell the broker's
/// calls to it from calls forged by another receiver (which would know the broker-wide secret).
/// After a rotation the previous secret keeps signing alongside until <see cref="PreviousUntil"/>
/// (Unix ms), so the receiver can switch without a flag day. Never logged, never shown after the
/// answer that created it.
/// </summary>
public sealed record ReceiverSecret(string Secret, long CreatedAt, string? Previous = null, long PreviousUntil = 0)
{
    private const string Prefix = "whsec_";

    /// <summary>A new secret: 256 random bits, <c>whsec_</c> + base64url (Svix's and QStash's shape).</summary>
    public static ReceiverSecret Create(long now) => new(NewSecretText(), now);

    /// <summary>A new current secret; the current one becomes the previous (replacing an older previous).</summary>
    public ReceiverSecret Rotate(long now, TimeSpan overlap) =>
        new(NewSecretText(), now, Secret, now + (long)overlap.TotalMilliseconds);

    /// <summary>The secrets that sign a call made at <paramref name="now"/>: current first.</summary>
    public IReadOnlyList<string> SigningAt(long now) => PreviousSignsAt(now) ? [Secret, Previous!] : [Secret];

    public bool PreviousSignsAt(long now) => Previous is not null && now < PreviousUntil;

    /// <summary>Names the secret without revealing it: the first 8 bytes of its SHA-256, hex.</summary>
    public string Fingerprint => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Secret)).AsSpan(0, 8));

    private static string NewSecretText() => Prefix + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    /// <summary>Keeps a secret out of logs and exception texts should a record ever be formatted.</summary>
    public override string ToString() => $"ReceiverSecret {{ Fingerprint = {Fingerprint}, CreatedAt = {CreatedAt} }}";
}
