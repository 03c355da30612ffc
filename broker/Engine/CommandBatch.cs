namespace HalfMsgBroker.Engine;

/// <summary>
/// Several commands of one request submitted as one: the writer runs them in order inside one group
/// commit, so they are stored together (one journal append) or, if the commit fails, not at all.
/// A retry after a failed group commit runs the whole batch again, carefully, like any command.
/// </summary>
internal sealed class CommandBatch<TResult>(IReadOnlyList<StoreCommand<TResult>> commands) : StoreCommand<TResult[]>
{
    protected override TResult[] Run(WriteContext context)
    {
        var results = new TResult[commands.Count];
        for (var i = 0; i < results.Length; i++) results[i] = commands[i].RunWithin(context);
        return results;
    }

    public override void NoteLookups(BatchLookups lookups)
    {
        foreach (var command in commands) command.NoteLookups(lookups);
    }
}
