namespace HalfMsgBroker.Engine;

/// <summary>
/// A change to stored state. The writer runs <see cref="Execute"/> on its thread inside a group
/// commit; only after the commit is durable does it call <see cref="Complete"/>, which publishes
/// in-memory effects and answers the caller. So an answer always means "stored".
/// </summary>
internal abstract class StoreCommand
{
    public abstract void Execute(WriteContext context);

    /// <summary>
    /// True for a command that reads in-memory state its own or an earlier batch's effects change (the
    /// subscriptions): the writer runs it only once every earlier batch is published, and publishes its
    /// batch before the next one runs. Rare (administration), so the pipelined fsync loses nothing.
    /// </summary>
    public virtual bool NeedsPublishedState => false;

    /// <summary>Names the stored messages <see cref="Execute"/> reads, so the batch can read them all at once (<see cref="BatchLookups"/>).</summary>
    public virtual void NoteLookups(BatchLookups lookups)
    {
    }
    public abstract void Complete();
    public abstract void Fail(Exception error);
}

internal abstract class StoreCommand<TResult> : StoreCommand
{
    private readonly TaskCompletionSource<TResult> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TResult _result = default!;

    public Task<TResult> Task => _completion.Task;

    protected abstract TResult Run(WriteContext context);

    public sealed override void Execute(WriteContext context) => _result = Run(context);

    /// <summary>Runs this command as part of another (a <see cref="CommandBatch{TResult}"/>), which answers for it.</summary>
    internal TResult RunWithin(WriteContext context) => Run(context);

    public sealed override void Complete() => _completion.TrySetResult(_result);

    public sealed override void Fail(Exception error) => _completion.TrySetException(error);
}
