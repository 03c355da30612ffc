using System.Data.Common;

namespace HalfMsgBroker.Client;

/// <summary>
/// The local message table (transactional outbox): <see cref="AddAsync{T}"/> writes a message into the app's
/// own database transaction, so it exists exactly when the business data commits; a relay
/// (<c>AddHalfMsgOutbox</c>) then sends it to the broker, at least once, with the row id as
/// <c>Idempotency-Key</c>. Use it where the producer cannot expose a check endpoint for half messages.
/// </summary>
public interface IOutbox
{
    /// <summary>The table (<c>halfmsg_outbox</c> unless configured otherwise).</summary>
    string TableName { get; }

    /// <summary>
    /// Portable DDL of the table and its index, as separate statements (SQLite and PostgreSQL run them as
    /// they are; adapt them for another database). Times are Unix milliseconds (UTC).
    /// </summary>
    IReadOnlyList<string> CreateTableSql { get; }

    /// <summary>Creates the table and its index when missing (idempotent).</summary>
    /// <param name="connection">A connection (no transaction open on it).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the table exists.</returns>
    Task EnsureCreatedAsync(DbConnection connection, CancellationToken cancellationToken = default);

    /// <summary>
    /// Writes a message into <paramref name="transaction"/>. Nothing is sent until the transaction commits;
    /// a rollback discards it. Call <see cref="Notify"/> after the commit to have the relay send it at once.
    /// </summary>
    /// <typeparam name="T">The body type (serialized with the client's JSON options; a <see cref="System.Text.Json.JsonElement"/> passes through).</typeparam>
    /// <param name="transaction">The app's open database transaction.</param>
    /// <param name="topic">The topic (1–127 characters of <c>[A-Za-z0-9_.-]</c>).</param>
    /// <param name="body">The body.</param>
    /// <param name="options">Tag, keys, properties, delay.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The row id, which is also the message's <c>Idempotency-Key</c>.</returns>
    Task<string> AddAsync<T>(DbTransaction transaction, string topic, T body, OutboxMessageOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Wakes this process's relay now instead of at its next poll. Call it after the transaction that
    /// wrote messages committed (ADO.NET has no commit hook). Other replicas still find the rows by polling.
    /// </summary>
    void Notify();
}

/// <summary>Optional settings of a message written to the outbox.</summary>
public sealed record OutboxMessageOptions
{
    /// <summary>Settings with nothing set.</summary>
    public static OutboxMessageOptions Default { get; } = new();

    /// <summary>The tag.</summary>
    public string? Tag { get; init; }

    /// <summary>Business keys (for look-up and consumer-side de-duplication).</summary>
    public IReadOnlyList<string>? Keys { get; init; }

    /// <summary>String properties.</summary>
    public IReadOnlyDictionary<string, string>? Properties { get; init; }

    /// <summary>
    /// Defers delivery (whole seconds, up to one day), counted from the write: a message the relay sends
    /// late is delivered at the write time plus the delay, or at once when that has passed.
    /// </summary>
    public TimeSpan? Delay { get; init; }
}
