namespace HalfMsgBroker.Storage;

/// <summary>
/// The batch collided with another broker's writes on the same rows (PostgreSQL's deadlock or serialization
/// failure, 40P01/40001, with many active brokers): it was rolled back whole, nothing was changed, and running
/// it again is safe. The writer retries it; a caller who still sees it gets 503 storage-unavailable.
/// </summary>
public sealed class StoreConflictException(string message, Exception inner) : Exception(message, inner);
