using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Engine;

/// <summary>
/// The writer's own copy of the messages it touched lately. A message is typically written three
/// times in quick succession (half, commit, ack); keeping it here saves the two reads in between.
/// Only the writer thread uses it, so it can hold the very objects commands mutate; if a batch
/// fails and rolls back, the whole cache is dropped so it never holds a state that was not stored.
/// </summary>
internal sealed class WriterMessageCache(IMessageLog store, int capacity)
{
    private readonly Dictionary<Guid, StoredMessage> _byId = [];
    private readonly Dictionary<string, Guid> _byTransaction = new(StringComparer.Ordinal);
    private readonly Queue<Guid> _age = new();

    public int Count => _byId.Count;

    public StoredMessage? Find(Guid id)
    {
        if (_byId.TryGetValue(id, out var cached)) return cached;
        var stored = store.Find(id);
        if (stored is not null) Remember(stored);
        return stored;
    }

    /// <summary>Only what is cached: no storage read.</summary>
    public StoredMessage? FindCachedByTransactionId(string transactionId) =>
        _byTransaction.TryGetValue(transactionId, out var id) ? _byId.GetValueOrDefault(id) : null;

    public StoredMessage? FindByTransactionId(string transactionId)
    {
        if (_byTransaction.TryGetValue(transactionId, out var id) && _byId.TryGetValue(id, out var cached)) return cached;
        var stored = store.FindByTransactionId(transactionId);
        if (stored is not null) Remember(stored);
        return stored;
    }

    public void Insert(StoredMessage message)
    {
        store.Insert(message);
        Remember(message);
    }

    public void Update(StoredMessage message)
    {
        store.Update(message);
        // Nothing more will happen to a finished message but retention: no reason to keep it.
        if (message.State != MessageState.Prepared && !DeliveryLifecycle.HasOpenDeliveries(message)) Forget(message);
    }

    public void Delete(StoredMessage message)
    {
        store.Delete(message);
        Forget(message);
    }

    public void Clear()
    {
        _byId.Clear();
        _byTransaction.Clear();
        _age.Clear();
    }

    private void Remember(StoredMessage message)
    {
        if (!_byId.TryAdd(message.Id, message)) return;
        if (message.TransactionId is { } tx) _byTransaction[tx] = message.Id;
        _age.Enqueue(message.Id);
        while (_byId.Count > capacity && _age.TryDequeue(out var oldest))
        {
            if (_byId.TryGetValue(oldest, out var evicted)) Forget(evicted);
        }
        // Ids of messages forgotten early stay queued; keep the queue from growing without bound.
        if (_age.Count > capacity * 2) TrimAge();
    }

    private void Forget(StoredMessage message)
    {
        if (!_byId.Remove(message.Id)) return;
        if (message.TransactionId is { } tx) _byTransaction.Remove(tx);
    }

    private void TrimAge()
    {
        var live = _age.Where(_byId.ContainsKey).ToList();
        _age.Clear();
        foreach (var id in live) _age.Enqueue(id);
    }
}
