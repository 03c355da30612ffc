namespace HalfMsgBroker.Client;

/// <summary>
/// Settings of the outbox and its relay, bound from configuration section <c>HalfMsg:Outbox</c> by
/// <c>AddHalfMsgOutbox</c> and validated when the host starts.
/// </summary>
public sealed record HalfMsgOutboxOptions
{
    /// <summary>The configuration section the options are bound from.</summary>
    public const string Section = "HalfMsg:Outbox";

    /// <summary>The table (a plain identifier, optionally schema-qualified; default <c>halfmsg_outbox</c>).</summary>
    public string TableName { get; set; } = "halfmsg_outbox";

    /// <summary>Parameter prefix of the ADO.NET provider (default <c>@</c>: SQLite, PostgreSQL, SQL Server, MySQL).</summary>
    public string ParameterPrefix { get; set; } = "@";

    /// <summary>Create the table when missing as the relay starts (default true). Set false when migrations own the schema.</summary>
    public bool CreateTable { get; set; } = true;

    /// <summary>
    /// Run the relay in this process (default true). False makes this process write only, e.g. web replicas
    /// whose rows a separate worker sends; <see cref="IOutbox.Notify"/> then does nothing useful.
    /// </summary>
    public bool RunRelay { get; set; } = true;

    /// <summary>How often the relay looks for due rows when nothing wakes it (default 1 s).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Rows claimed per pass (1–1000, default 100). A full batch is followed at once by the next pass.</summary>
    public int BatchSize { get; set; } = 100;

    /// <summary>Sends in flight at once within a pass (1–100, default 8).</summary>
    public int MaxConcurrentSends { get; set; } = 8;

    /// <summary>
    /// How long a claimed row belongs to this relay (default 60 s). A relay that dies holding rows delays
    /// them by at most this; a pass that has not sent its rows by half of it gives them up.
    /// Keep the replicas' clocks within a small fraction of it.
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Delay after a row's first failed send (default 1 s); it doubles per further failure, with jitter.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest delay between two attempts of a row (default 5 minutes). A row is retried until it is sent.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How long sent rows are kept (with <c>sent_at</c> set) before the relay deletes them. Zero (the
    /// default) deletes a row as soon as the broker accepted it.
    /// </summary>
    public TimeSpan SentRetention { get; set; } = TimeSpan.Zero;

    /// <summary>Names this relay in <c>lease_owner</c>; null for machine name, process id and a random suffix.</summary>
    public string? RelayId { get; set; }

    /// <summary>The problems with these settings, empty when they are valid.</summary>
    /// <returns>One sentence per problem.</returns>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        try
        {
            DbHelpers.CheckIdentifier(TableName, nameof(TableName));
        }
        catch (ArgumentException)
        {
            problems.Add($"HalfMsg:Outbox:TableName '{TableName}' must be a plain SQL identifier ([A-Za-z_][A-Za-z0-9_.]*).");
        }

        if (ParameterPrefix is not ("@" or ":" or "$"))
        {
            problems.Add("HalfMsg:Outbox:ParameterPrefix must be @, : or $.");
        }

        Check(problems, PollInterval >= TimeSpan.FromMilliseconds(10) && PollInterval <= TimeSpan.FromHours(1), "PollInterval must be between 10 ms and 1 hour.");
        Check(problems, BatchSize is >= 1 and <= 1000, "BatchSize must be between 1 and 1000.");
        Check(problems, MaxConcurrentSends is >= 1 and <= 100, "MaxConcurrentSends must be between 1 and 100.");
        Check(problems, LeaseDuration >= TimeSpan.FromSeconds(1), "LeaseDuration must be at least 1 s.");
        Check(problems, RetryDelay > TimeSpan.Zero, "RetryDelay must be positive.");
        Check(problems, MaxRetryDelay >= RetryDelay, "MaxRetryDelay must be at least RetryDelay.");
        Check(problems, SentRetention >= TimeSpan.Zero, "SentRetention must not be negative.");
        Check(problems, RelayId is null || RelayId.Length is > 0 and <= 100, "RelayId must be 1-100 characters when set.");
        return problems;
    }

    private static void Check(List<string> problems, bool ok, string problem)
    {
        if (!ok)
        {
            problems.Add("HalfMsg:Outbox:" + problem);
        }
    }
}
