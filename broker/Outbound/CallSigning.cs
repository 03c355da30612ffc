using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Outbound;

/// <summary>
/// What one outbound call is signed with, decided by the caller (check-back or push) so that
/// <see cref="OutboundHttp"/> needs to know nothing about where secrets live.
/// </summary>
/// <param name="BrokerSecrets"><c>Broker:Signing:Secret</c>: signs v1 and v2.</param>
/// <param name="ReceiverSecrets">The producer group's or subscription's own secrets in force: sign v2 only.</param>
/// <param name="MessageId">The message the call is about, bound into v2.</param>
internal sealed record CallSigning(IReadOnlyList<string> BrokerSecrets, IReadOnlyList<string> ReceiverSecrets, string MessageId)
{
    public bool IsEmpty => BrokerSecrets.Count == 0 && ReceiverSecrets.Count == 0;

    /// <param name="now">Unix ms: decides whether a rotated-out secret still signs.</param>
    public static CallSigning For(IReadOnlyList<string> brokerSecrets, ReceiverSecret? receiver, Guid messageId, long now) =>
        new(brokerSecrets, receiver?.SigningAt(now) ?? [], messageId.ToString());
}
