namespace HalfMsgBroker.Storage;

/// <summary>
/// A batch was sent but its answer never came (the connection broke or timed out during execute or commit):
/// the change may be stored or not. A 503 whose detail says so, unlike <see cref="StoreUnavailableException"/>'s
/// "nothing was changed"; the store takes no more writes and the broker stops.
/// </summary>
public sealed class StoreOutcomeUnknownException(string message) : Exception(message);
