namespace HalfMsgBroker.Storage;

/// <summary>
/// The database refused a value the API let through (PostgreSQL's text type holds no NUL, and only valid
/// UTF-8): a 400, not a 500. The API's validation refuses such values first; this is the backstop.
/// </summary>
public sealed class StoreRefusedInputException(string message) : Exception(message);
