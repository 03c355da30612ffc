namespace HalfMsgBroker.Examples.OrderService;

public sealed class OrderServiceOptions
{
    public const string Section = "OrderService";

    /// <summary>Accept the <c>fault</c> field of POST /orders (demo only; off by default).</summary>
    public bool AllowFaults { get; set; }

    /// <summary>How long a <c>hang</c> fault waits for the process to be killed before it gives up and crashes.</summary>
    public TimeSpan HangLimit { get; set; } = TimeSpan.FromMinutes(2);
}

/// <summary>What POST /orders may be told to do wrong, for the demo.</summary>
public enum OrderFault
{
    /// <summary>Nothing: the order commits.</summary>
    None,

    /// <summary>The local transaction fails (a business rule): the half message is rolled back.</summary>
    Rollback,

    /// <summary>The local transaction commits, then the process dies (<see cref="Environment.FailFast(string)"/>)
    /// before the commit reaches the broker: the check-back must find the order and commit.</summary>
    Crash,

    /// <summary>Like <see cref="Crash"/>, but the process waits at that point to be killed from outside (SIGKILL).</summary>
    Hang,

    /// <summary>The order row is written but the local transaction is still open when the process waits to be killed:
    /// the check-back must find nothing, record a rollback marker and roll back.</summary>
    HangInLocalTransaction,
}

/// <summary>POST /orders.</summary>
public sealed record PlaceOrderRequest(string? OrderId, string Sku, int Quantity, string? Customer, string? Fault);
