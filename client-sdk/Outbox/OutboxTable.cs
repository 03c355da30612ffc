using System.Data.Common;
using System.Globalization;
using System.Text;

namespace HalfMsgBroker.Client;

/// <summary>One unsent row, as the relay claimed it.</summary>
internal sealed record OutboxRow(
    string Id,
    string Topic,
    string Body,
    string? Tag,
    string? Keys,
    string? Properties,
    int DelaySeconds,
    long CreatedAt,
    int Attempts);

/// <summary>
/// The statements on <c>halfmsg_outbox</c>, in SQL that SQLite, PostgreSQL and MySQL all accept (times are
/// Unix milliseconds, so comparisons never depend on a collation). Rows are claimed with a lease
/// (<c>lease_owner</c>, <c>lease_until</c>) rather than row locks, so several relays on one table each
/// take different rows on every database, and a relay that dies only delays its rows until the lease ends.
/// </summary>
internal sealed class OutboxTable(string tableName, string prefix)
{
    public string Name { get; } = DbHelpers.CheckIdentifier(tableName, nameof(tableName));

    private string P => prefix;

    /// <summary>
    /// <c>message_keys</c> and <c>delay_seconds</c> rather than <c>keys</c> and <c>delay</c>: KEYS is a
    /// reserved word in MySQL. The index serves the relay's look-up of due rows.
    /// </summary>
    public IReadOnlyList<string> CreateSql =>
    [
        $"CREATE TABLE IF NOT EXISTS {Name} (" +
        "id VARCHAR(64) NOT NULL PRIMARY KEY, topic VARCHAR(127) NOT NULL, body TEXT NOT NULL, tag VARCHAR(127) NULL, " +
        "message_keys TEXT NULL, properties TEXT NULL, delay_seconds INTEGER NOT NULL, created_at BIGINT NOT NULL, " +
        "attempts INTEGER NOT NULL, next_attempt_at BIGINT NOT NULL, lease_owner VARCHAR(200) NULL, lease_until BIGINT NULL, " +
        "sent_at BIGINT NULL, last_error TEXT NULL)",
        $"CREATE INDEX IF NOT EXISTS {Name.Replace('.', '_')}_due ON {Name} (sent_at, next_attempt_at)",
    ];

    public async Task EnsureCreatedAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        foreach (var sql in CreateSql)
        {
            await DbHelpers.ExecuteDdlAsync(connection, sql, P, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task InsertAsync(DbTransaction transaction, OutboxRow row, CancellationToken cancellationToken)
    {
        var connection = transaction.Connection ?? throw new ArgumentException("The transaction has no connection.", nameof(transaction));
        await ExecuteAsync(
            connection,
            transaction,
            $"INSERT INTO {Name} (id, topic, body, tag, message_keys, properties, delay_seconds, created_at, attempts, next_attempt_at) " +
            $"VALUES ({P}id, {P}topic, {P}body, {P}tag, {P}keys, {P}props, {P}delay, {P}created, 0, {P}created)",
            cancellationToken,
            ("id", row.Id),
            ("topic", row.Topic),
            ("body", row.Body),
            ("tag", (object?)row.Tag ?? DBNull.Value),
            ("keys", (object?)row.Keys ?? DBNull.Value),
            ("props", (object?)row.Properties ?? DBNull.Value),
            ("delay", row.DelaySeconds),
            ("created", row.CreatedAt)).ConfigureAwait(false);
    }

    /// <summary>
    /// Claims up to <paramref name="limit"/> due rows for <paramref name="owner"/> (unique per claim) and
    /// returns them: <see cref="SelectDueAsync"/>, then <see cref="LeaseAsync"/>.
    /// </summary>
    public async Task<IReadOnlyList<OutboxRow>> ClaimAsync(DbConnection connection, string owner, long now, long leaseUntil, int limit, CancellationToken cancellationToken)
    {
        var candidates = await SelectDueAsync(connection, now, limit, cancellationToken).ConfigureAwait(false);
        return candidates.Count == 0 ? [] : await LeaseAsync(connection, candidates, owner, now, leaseUntil, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Ids of unsent rows that are due and not leased (another relay may pick the same ones).</summary>
    public async Task<IReadOnlyList<string>> SelectDueAsync(DbConnection connection, long now, int limit, CancellationToken cancellationToken)
    {
        var candidates = new List<string>();
        var select = DbHelpers.Command(
            connection,
            null,
            $"SELECT id FROM {Name} WHERE sent_at IS NULL AND next_attempt_at <= {P}now AND (lease_until IS NULL OR lease_until < {P}now) " +
            $"ORDER BY next_attempt_at, id LIMIT {limit.ToString(CultureInfo.InvariantCulture)}",
            null,
            P,
            ("now", now));
        await using (select.ConfigureAwait(false))
        {
            var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    candidates.Add(reader.GetString(0));
                }
            }
        }

        return candidates;
    }

    /// <summary>
    /// Leases those of <paramref name="candidates"/> still unsent and free, and returns them. The UPDATE
    /// repeats the "unsent and not leased" condition, so of two relays that selected the same candidates
    /// only one gets each row: every database re-checks an UPDATE's WHERE against the row it finally writes.
    /// </summary>
    public async Task<IReadOnlyList<OutboxRow>> LeaseAsync(DbConnection connection, IReadOnlyList<string> candidates, string owner, long now, long leaseUntil, CancellationToken cancellationToken)
    {
        var ids = new StringBuilder();
        var parameters = new List<(string, object)> { ("owner", owner), ("until", leaseUntil), ("now", now) };
        for (var i = 0; i < candidates.Count; i++)
        {
            ids.Append(i == 0 ? "" : ", ").Append(P).Append('i').Append(i);
            parameters.Add(("i" + i.ToString(CultureInfo.InvariantCulture), candidates[i]));
        }

        var claimed = await ExecuteAsync(
            connection,
            null,
            $"UPDATE {Name} SET lease_owner = {P}owner, lease_until = {P}until WHERE id IN ({ids}) " +
            $"AND sent_at IS NULL AND (lease_until IS NULL OR lease_until < {P}now)",
            cancellationToken,
            [.. parameters]).ConfigureAwait(false);
        return claimed == 0 ? [] : await ReadOwnedAsync(connection, owner, cancellationToken).ConfigureAwait(false);
    }

    private async Task<IReadOnlyList<OutboxRow>> ReadOwnedAsync(DbConnection connection, string owner, CancellationToken cancellationToken)
    {
        var rows = new List<OutboxRow>();
        var command = DbHelpers.Command(
            connection,
            null,
            $"SELECT id, topic, body, tag, message_keys, properties, delay_seconds, created_at, attempts FROM {Name} " +
            $"WHERE lease_owner = {P}owner AND sent_at IS NULL ORDER BY next_attempt_at, id",
            null,
            P,
            ("owner", owner));
        await using (command.ConfigureAwait(false))
        {
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    rows.Add(new OutboxRow(
                        reader.GetString(0),
                        reader.GetString(1),
                        reader.GetString(2),
                        reader.IsDBNull(3) ? null : reader.GetString(3),
                        reader.IsDBNull(4) ? null : reader.GetString(4),
                        reader.IsDBNull(5) ? null : reader.GetString(5),
                        Convert.ToInt32(reader.GetValue(6), CultureInfo.InvariantCulture),
                        Convert.ToInt64(reader.GetValue(7), CultureInfo.InvariantCulture),
                        Convert.ToInt32(reader.GetValue(8), CultureInfo.InvariantCulture)));
                }
            }
        }

        return rows;
    }

    /// <summary>The broker accepted the row: deleted, or kept with <c>sent_at</c> when <paramref name="keep"/>. False when the lease was lost meanwhile.</summary>
    public async Task<bool> MarkSentAsync(DbConnection connection, string id, string owner, long now, bool keep, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            connection,
            null,
            keep
                ? $"UPDATE {Name} SET sent_at = {P}now, attempts = attempts + 1, last_error = NULL WHERE id = {P}id AND lease_owner = {P}owner AND sent_at IS NULL"
                : $"DELETE FROM {Name} WHERE id = {P}id AND lease_owner = {P}owner AND sent_at IS NULL",
            cancellationToken,
            ("id", id),
            ("owner", owner),
            ("now", now)).ConfigureAwait(false) == 1;

    /// <summary>The send failed: the next attempt waits until <paramref name="nextAttemptAt"/>, and the lease is given up.</summary>
    public Task<int> MarkFailedAsync(DbConnection connection, string id, string owner, long nextAttemptAt, string error, CancellationToken cancellationToken) =>
        ExecuteAsync(
            connection,
            null,
            $"UPDATE {Name} SET attempts = attempts + 1, next_attempt_at = {P}next, last_error = {P}error, lease_owner = NULL, lease_until = NULL " +
            $"WHERE id = {P}id AND lease_owner = {P}owner AND sent_at IS NULL",
            cancellationToken,
            ("id", id),
            ("owner", owner),
            ("next", nextAttemptAt),
            ("error", error.Length <= 1000 ? error : error[..1000]));

    /// <summary>Gives up the lease of a row not attempted (the relay is stopping), without counting an attempt.</summary>
    public Task<int> ReleaseAsync(DbConnection connection, string id, string owner, CancellationToken cancellationToken) =>
        ExecuteAsync(
            connection,
            null,
            $"UPDATE {Name} SET lease_owner = NULL, lease_until = NULL WHERE id = {P}id AND lease_owner = {P}owner AND sent_at IS NULL",
            cancellationToken,
            ("id", id),
            ("owner", owner));

    /// <summary>Deletes rows sent before <paramref name="cutoff"/>.</summary>
    public Task<int> PurgeSentAsync(DbConnection connection, long cutoff, CancellationToken cancellationToken) =>
        ExecuteAsync(connection, null, $"DELETE FROM {Name} WHERE sent_at IS NOT NULL AND sent_at < {P}cutoff", cancellationToken, ("cutoff", cutoff));

    private async Task<int> ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
    {
        var command = DbHelpers.Command(connection, transaction, sql, null, P, parameters);
        await using (command.ConfigureAwait(false))
        {
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
