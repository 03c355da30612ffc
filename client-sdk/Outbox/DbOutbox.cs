using System.Data.Common;
using System.Text.Json;

namespace HalfMsgBroker.Client;

/// <summary>The <see cref="IOutbox"/> over an ADO.NET table (see <see cref="OutboxTable"/>).</summary>
internal sealed class DbOutbox(OutboxTable table, JsonSerializerOptions jsonOptions, TimeProvider time, OutboxSignal signal) : IOutbox
{
    private const int MaxNameLength = 127;
    private const int MaxKeys = 32;
    private const int MaxKeyLength = 128;
    private const int MaxProperties = 64;
    private static readonly int MaxDelaySeconds = (int)TimeSpan.FromDays(1).TotalSeconds;

    public string TableName => table.Name;

    public IReadOnlyList<string> CreateTableSql => table.CreateSql;

    public Task EnsureCreatedAsync(DbConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return table.EnsureCreatedAsync(connection, cancellationToken);
    }

    public async Task<string> AddAsync<T>(DbTransaction transaction, string topic, T body, OutboxMessageOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        options ??= OutboxMessageOptions.Default;

        // What the broker would refuse with a 400 is refused here, inside the app's transaction: a row the
        // broker can never accept would otherwise be retried forever.
        if (!IsValidName(topic))
        {
            throw new ArgumentException($"'{topic}' is not a topic name: 1-{MaxNameLength} characters of [A-Za-z0-9_.-].", nameof(topic));
        }

        if (options.Tag is { } tag && (tag.Length is 0 or > MaxNameLength || tag.Any(c => c == '|' || char.IsWhiteSpace(c) || char.IsControl(c))))
        {
            throw new ArgumentException($"'{tag}' is not a tag: 1-{MaxNameLength} characters without '|' or white space.", nameof(options));
        }

        if (options.Keys is { } keys && (keys.Count > MaxKeys || keys.Any(k => k is null or { Length: 0 or > MaxKeyLength })))
        {
            throw new ArgumentException($"Keys: at most {MaxKeys}, each 1-{MaxKeyLength} characters.", nameof(options));
        }

        if (options.Properties is { } properties && (properties.Count > MaxProperties || properties.Any(p => p.Key.Length is 0 or > MaxKeyLength || p.Value is null)))
        {
            throw new ArgumentException($"Properties: at most {MaxProperties}, names 1-{MaxKeyLength} characters, values not null.", nameof(options));
        }

        var delaySeconds = options.Delay is { } delay ? (int)Math.Ceiling(delay.TotalSeconds) : 0;
        if (delaySeconds < 0 || delaySeconds > MaxDelaySeconds)
        {
            throw new ArgumentException("Delay must be between 0 and one day.", nameof(options));
        }

        var now = time.GetUtcNow();
        var json = body is JsonElement element ? element.GetRawText() : JsonSerializer.Serialize(body, jsonOptions);
        var row = new OutboxRow(
            Guid.CreateVersion7(now).ToString("N"),
            topic,
            json,
            options.Tag,
            options.Keys is { Count: > 0 } rowKeys ? JsonSerializer.Serialize(rowKeys.ToArray(), OutboxJsonContext.Default.StringArray) : null,
            options.Properties is { Count: > 0 } rowProperties ? JsonSerializer.Serialize(rowProperties.ToDictionary(), OutboxJsonContext.Default.DictionaryStringString) : null,
            delaySeconds,
            now.ToUnixTimeMilliseconds(),
            0);
        await table.InsertAsync(transaction, row, cancellationToken).ConfigureAwait(false);
        return row.Id;
    }

    public void Notify() => signal.Notify();

    private static bool IsValidName(string? value) =>
        value is { Length: > 0 and <= MaxNameLength } && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-');
}

/// <summary>Wakes the relay of this process (<see cref="IOutbox.Notify"/>). A wake-up is never lost: it stays set until the relay's next pass begins.</summary>
internal sealed class OutboxSignal
{
    private TaskCompletionSource _signal = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes on the first <see cref="Notify"/> after the last <see cref="Reset"/>.</summary>
    public Task Woken => Volatile.Read(ref _signal).Task;

    public void Notify() => Volatile.Read(ref _signal).TrySetResult();

    /// <summary>Called as a pass begins: a Notify from now on wakes the next wait.</summary>
    public void Reset()
    {
        var current = Volatile.Read(ref _signal);
        if (current.Task.IsCompleted)
        {
            Interlocked.CompareExchange(ref _signal, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), current);
        }
    }
}
