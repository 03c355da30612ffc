using System.Net.Sockets;
using System.Security.Authentication;

namespace HalfMsgBroker.Outbound;

/// <summary>
/// The words lastError and lastCheckResult may hold for a failed call: <c>timeout</c>,
/// <c>connect timeout</c>, <c>connection refused</c>, <c>dns</c>, <c>tls</c>, <c>url-not-allowed</c>, <c>invalid answer</c>,
/// <c>connection failed</c> (and <c>http 503</c> from <see cref="OutboundResult.Describe"/>). Never the
/// exception's text: it names addresses and ports of the broker's network, which clients must not
/// learn. The broker log has the exception.
/// </summary>
internal static class OutboundErrors
{
    public const string Timeout = "timeout";
    public const string ConnectTimeout = "connect timeout";
    public const string ConnectionRefused = "connection refused";
    public const string Dns = "dns";
    public const string Tls = "tls";
    public const string UrlNotAllowed = "url-not-allowed";
    public const string InvalidAnswer = "invalid answer";
    public const string ConnectionFailed = "connection failed";

    /// <summary>
    /// The target could not be reached at all, so it said nothing: an offline producer, not a "no"
    /// (a check-back retries these without spending a check).
    /// </summary>
    public static bool IsUnreachable(string? error) => error is ConnectionRefused or Dns or ConnectTimeout;

    public static string Describe(Exception error)
    {
        for (var e = error; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case OutboundRefusedException:
                    return UrlNotAllowed;
                case AuthenticationException:
                    return Tls;
                case SocketException { SocketErrorCode: SocketError.ConnectionRefused }:
                    return ConnectionRefused;
                case SocketException { SocketErrorCode: SocketError.HostNotFound or SocketError.NoData or SocketError.TryAgain }:
                    return Dns;
                case SocketException { SocketErrorCode: SocketError.TimedOut }:
                    return ConnectTimeout;
                case TimeoutException:
                    return Timeout;
            }
        }
        var kind = error switch
        {
            HttpRequestException http => http.HttpRequestError,
            HttpIOException io => io.HttpRequestError,
            _ => HttpRequestError.Unknown,
        };
        return kind switch
        {
            HttpRequestError.NameResolutionError => Dns,
            HttpRequestError.SecureConnectionError => Tls,
            HttpRequestError.InvalidResponse or HttpRequestError.HttpProtocolError => InvalidAnswer,
            _ => ConnectionFailed,
        };
    }
}
