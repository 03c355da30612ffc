namespace HalfMsgBroker.Bench;

/// <summary>Everything a run is parameterised by. Quick and full differ only in sizes and durations.</summary>
internal sealed class Settings
{
    public bool Quick { get; set; }
    public string? BrokerDll { get; set; }

    /// <summary>Profiling mode: drive a broker someone else started (no process management, one data path for every row).</summary>
    public Uri? ExternalBrokerUrl { get; set; }

    /// <summary>An external broker's h2c endpoint; without it workloads use <see cref="ExternalBrokerUrl"/> over HTTP/1.1.</summary>
    public Uri? ExternalBrokerH2cUrl { get; set; }

    /// <summary>Every HalfMsgBroker workload over HTTP/1.1 instead of h2c.</summary>
    public bool Http1 { get; set; }

    /// <summary>Access control on: the broker gets an admin key, producers and consumers each a key of their role.</summary>
    public bool Keys { get; set; }
    public int ExternalBrokerPid { get; set; }
    public string? AnalyzeTrace { get; set; }

    /// <summary>Messages per group commit for the storage-floor measurement (0: not that mode).</summary>
    public int StorageFloorBatch { get; set; }
    public int StorageFloorMessages { get; set; } = 100_000;
    public int StorageFloorCheckpoint { get; set; } = 1000;
    public int StorageFloorOps { get; set; } = 3;
    public bool StorageFloorTopicCounts { get; set; }

    /// <summary>Drive the broker's journaled store (journal + applier) instead of LiteDB alone.</summary>
    public bool StorageFloorJournal { get; set; }

    /// <summary>Extra arguments for every broker the generator starts (experiments, e.g. a log level).</summary>
    public List<string> BrokerArgs { get; } = [];
    public string WorkDir { get; set; } = Path.Combine(Path.GetTempPath(), "halfmsg-bench");
    public int RabbitPort { get; set; }
    public int RabbitPid { get; set; }
    public string RabbitVersion { get; set; } = "";
    public string Out { get; set; } = "";
    public string Command { get; set; } = "";
    public string BrokerCommit { get; set; } = "";
    public HashSet<int> Workloads { get; set; } = [1, 2, 3, 4, 5];
    /// <summary>The broker's durability modes to run: <c>Fsync</c>, <c>Process</c>, and <c>Fsync-visible</c> (Fsync with
    /// <c>Broker:Storage:VisibleBeforeFsync</c>: consumers see a change once written, before its fsync, as RabbitMQ does).</summary>
    public List<string> Modes { get; set; } = ["Fsync", "Fsync-visible", "Process"];

    /// <summary>The broker's storage providers to run the broker rows on, in this order: <c>litedb</c>
    /// (the default) and/or <c>postgresql</c> (a private cluster for the run, <see cref="PostgresServer"/>).</summary>
    public List<string> Storages { get; set; } = ["litedb"];

    /// <summary>Folder for the private PostgreSQL cluster (must not exist; its parent must let the postgres user in).</summary>
    public string? PgFolder { get; set; }

    /// <summary>With <c>--multi-active-latency</c>: list this many of PostgreSQL's costliest statements (pg_stat_statements); 0 = none.</summary>
    public int PgStatements { get; set; }

    /// <summary>Npgsql's Max Pool Size for each broker on PostgreSQL (0: Npgsql's default).</summary>
    public int PgMaxPoolSize { get; set; }

    /// <summary>
    /// With <c>--storage postgresql</c>: extra workload 1 rows with this many broker processes on ONE database,
    /// all active (<c>Broker:Storage:PostgreSql:MultiActive=true</c>); producers spread over the nodes, each
    /// consumer on the node after its producers' (so deliveries cross nodes). Empty: none.
    /// </summary>
    public List<int> PgNodes { get; set; } = [];

    public int Producers { get; set; } = 16;

    /// <summary>Target messages per second across all producers (0: as fast as they go).</summary>
    public int Rate { get; set; }

    /// <summary>
    /// After the full-load rows, workload 1 runs again at this offered rate (RabbitMQ and each mode), for
    /// latency at a light load; 0 turns it off. Ignored when --rate already paces every row.
    /// </summary>
    public int LightRate { get; set; } = 1000;

    /// <summary>Workloads 1 and 3 with plain sends instead of half → commit: the consuming side's capacity.</summary>
    public bool PlainSends { get; set; }

    /// <summary>
    /// Workload 1 also runs (in <c>Fsync</c> mode, as a row of its own) with its producers ending each transaction as
    /// RocketMQ's producer does (<c>endTransactionOneway</c>): the commit is sent and the next half message goes out
    /// without waiting for its answer, which is read once that half message is stored. Safe for the producer because a
    /// lost commit is resolved by the check-back. The headline rows await every commit. <c>--no-one-way-end</c>: off.
    /// </summary>
    public bool OneWayEnd { get; set; } = true;
    public int Consumers { get; set; } = 4;

    /// <summary>With N ≥ 2, workloads 1 and 2 also run as rows of their own with N messages per request (the batch endpoints).</summary>
    public int BatchSends { get; set; }
    public int BatchSize { get; set; } = 32;
    public int PayloadBytes { get; set; } = 200;

    /// <summary>Each row's broker is a fresh process: on this 2-core machine the JIT's tiering takes
    /// 30–40 s to settle under load (see results/profile-*.md), so the warm-up is not short.</summary>
    public TimeSpan Warmup { get; set; }
    public TimeSpan MaxWarmup => Quick ? TimeSpan.FromSeconds(25) : TimeSpan.FromSeconds(45);

    /// <summary>Warm-up of a row on a process that is already warm (and of RabbitMQ's rows).</summary>
    public TimeSpan ShortWarmup => Quick ? TimeSpan.FromSeconds(3) : TimeSpan.FromSeconds(5);
    public TimeSpan Measure { get; set; }
    public TimeSpan Drain => TimeSpan.FromSeconds(10);

    /// <summary>Hard cap on messages per timed workload: the run is bounded in count as well as time.</summary>
    public int MaxMessagesPerWorkload => Quick ? 400_000 : 2_000_000;

    public int CheckBackCount { get; set; }
    public TimeSpan CheckIdleWindow => Quick ? TimeSpan.FromSeconds(5) : TimeSpan.FromSeconds(10);
    public TimeSpan CheckSendBudget => Quick ? TimeSpan.FromSeconds(30) : TimeSpan.FromSeconds(120);
    public TimeSpan CheckDrainBudget => Quick ? TimeSpan.FromSeconds(45) : TimeSpan.FromSeconds(150);

    public int RestartCount { get; set; }

    /// <summary>The multi-active latency mode (<see cref="MultiActiveLatency"/>) instead of the workloads.</summary>
    public bool MultiActiveLatency { get; set; }

    /// <summary>The restart-memory mode (<see cref="RestartMemory"/>) instead of the workloads.</summary>
    public bool RestartMemory { get; set; }
    public int RestartMemoryCount { get; set; } = 1_000_000;
    public List<string> RestartMemoryScenarios { get; set; } = ["open", "prepared"];

    /// <summary>Path of a dotnet-gcdump executable: the restart-memory mode then reports the managed heap.</summary>
    public string? GcDumpTool { get; set; }
    public TimeSpan RestartLoadBudget => Quick ? TimeSpan.FromSeconds(60) : TimeSpan.FromSeconds(300);

    public static Settings Parse(string[] args)
    {
        var s = new Settings();
        int? measure = null, warmup = null, checkCount = null, restartCount = null;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--quick": s.Quick = true; break;
                case "--multi-active-latency": s.MultiActiveLatency = true; break;
                case "--broker-dll": s.BrokerDll = Next(); break;
                case "--work-dir": s.WorkDir = Next(); break;
                case "--broker-url": s.ExternalBrokerUrl = new Uri(Next().TrimEnd('/') + "/"); break;
                case "--broker-h2c-url": s.ExternalBrokerH2cUrl = new Uri(Next().TrimEnd('/') + "/"); break;
                case "--http1": s.Http1 = true; break;
                case "--keys": s.Keys = true; break;
                case "--no-one-way-end": s.OneWayEnd = false; break;
                case "--broker-pid": s.ExternalBrokerPid = int.Parse(Next()); break;
                case "--analyze-trace": s.AnalyzeTrace = Next(); break;
                case "--storage-floor": s.StorageFloorBatch = int.Parse(Next()); break;
                case "--floor-messages": s.StorageFloorMessages = int.Parse(Next()); break;
                case "--floor-checkpoint": s.StorageFloorCheckpoint = int.Parse(Next()); break;
                case "--floor-ops": s.StorageFloorOps = int.Parse(Next()); break;
                case "--floor-topic-counts": s.StorageFloorTopicCounts = true; break;
                case "--floor-journal": s.StorageFloorJournal = true; break;
                case "--broker-arg": s.BrokerArgs.Add(Next()); break;
                case "--rabbit-port": s.RabbitPort = int.Parse(Next()); break;
                case "--rabbit-pid": s.RabbitPid = int.Parse(Next()); break;
                case "--rabbit-version": s.RabbitVersion = Next(); break;
                case "--out": s.Out = Next(); break;
                case "--command": s.Command = Next(); break;
                case "--broker-commit": s.BrokerCommit = Next(); break;
                case "--workloads": s.Workloads = [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse)]; break;
                case "--modes": s.Modes = [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries)]; break;
                case "--storage": s.Storages = [.. Next().ToLowerInvariant().Split(',', StringSplitOptions.RemoveEmptyEntries).Distinct()]; break;
                case "--pg-folder": s.PgFolder = Next(); break;
                case "--pg-statements": s.PgStatements = int.Parse(Next()); break;
                case "--pg-max-pool-size": s.PgMaxPoolSize = int.Parse(Next()); break;
                case "--pg-nodes": s.PgNodes = [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).Distinct()]; break;
                case "--producers": s.Producers = int.Parse(Next()); break;
                case "--rate": s.Rate = int.Parse(Next()); break;
                case "--light-rate": s.LightRate = int.Parse(Next()); break;
                case "--plain-sends": s.PlainSends = true; break;
                case "--consumers": s.Consumers = int.Parse(Next()); break;
                case "--batch-sends": s.BatchSends = int.Parse(Next()); break;
                case "--batch": s.BatchSize = int.Parse(Next()); break;
                case "--measure-seconds": measure = int.Parse(Next()); break;
                case "--warmup-seconds": warmup = int.Parse(Next()); break;
                case "--check-count": checkCount = int.Parse(Next()); break;
                case "--restart-count": restartCount = int.Parse(Next()); break;
                case "--restart-memory": s.RestartMemory = true; break;
                case "--restart-memory-count": s.RestartMemoryCount = int.Parse(Next()); break;
                case "--restart-memory-scenarios": s.RestartMemoryScenarios = [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries)]; break;
                case "--gcdump-tool": s.GcDumpTool = Next(); break;
                default: throw new ArgumentException($"unknown argument {args[i]}");
            }
        }
        s.Measure = TimeSpan.FromSeconds(measure ?? (s.Quick ? 10 : 30));
        s.Warmup = TimeSpan.FromSeconds(warmup ?? (s.Quick ? 15 : 20));
        s.CheckBackCount = checkCount ?? (s.Quick ? 10_000 : 100_000);
        s.RestartCount = restartCount ?? (s.Quick ? 100_000 : 1_000_000);
        if (s.ExternalBrokerUrl is not null && s.ExternalBrokerH2cUrl is null) s.Http1 = true;
        if (s.Storages.Count == 0 || s.Storages.Any(x => x is not ("litedb" or "postgresql")))
        {
            throw new ArgumentException($"--storage takes litedb, postgresql or both (litedb,postgresql); got '{string.Join(',', s.Storages)}'");
        }
        if (s.Storages.Contains("postgresql") && s.ExternalBrokerUrl is not null)
        {
            throw new ArgumentException("--storage postgresql starts its own brokers; it cannot be used with --broker-url");
        }
        if (s.PgNodes.Count > 0 && (!s.Storages.Contains("postgresql") || s.PgNodes.Any(n => n is < 1 or > 8)))
        {
            throw new ArgumentException("--pg-nodes takes node counts 1-8 (e.g. 1,2,3) and needs --storage postgresql");
        }
        if (s.BatchSends is 1 or < 0 or > 100) throw new ArgumentException("--batch-sends must be 2-100 (the batch endpoints' item limit)");
        return s;
    }
}
