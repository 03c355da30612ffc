using Microsoft.Extensions.DependencyInjection;

namespace HalfMsgBroker.Storage;

/// <summary>
/// A storage provider: the narrow ports it serves, in one object. Code depends on the port it uses
/// (<see cref="IMessageLog"/> for the writer and lookups by id, <see cref="IDueTimes"/> for timers and
/// recovery, <see cref="IStoreMonitoring"/> for listings and counts, <see cref="IReceiptKeySource"/> for
/// receipt handles); only hosting sees the whole store.
/// </summary>
public interface IMessageStore : IMessageLog, IDueTimes, IStoreMonitoring, IReceiptKeySource, IDisposable;

/// <summary>Where receipt handles get the key they are signed with.</summary>
public interface IReceiptKeySource
{
    /// <summary>A random key made once per store; receipt handles are signed with it.</summary>
    byte[] ReceiptKey();
}

internal static class StorePorts
{
    /// <summary>Registers each port as the one <see cref="IMessageStore"/> singleton.</summary>
    public static IServiceCollection AddStorePorts(this IServiceCollection services) => services
        .AddSingleton<IMessageLog>(sp => sp.GetRequiredService<IMessageStore>())
        .AddSingleton<IDueTimes>(sp => sp.GetRequiredService<IMessageStore>())
        .AddSingleton<IStoreMonitoring>(sp => sp.GetRequiredService<IMessageStore>())
        .AddSingleton<IReceiptKeySource>(sp => sp.GetRequiredService<IMessageStore>());
}
