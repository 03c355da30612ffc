namespace HalfMsgBroker.Lifecycle;

/// <summary>RocketMQ's tag expression: <c>*</c>, or tags joined by <c>||</c>.</summary>
public sealed class TagFilter
{
    public static readonly TagFilter All = new("*", null);

    private readonly HashSet<string>? _tags;

    private TagFilter(string expression, HashSet<string>? tags)
    {
        Expression = expression;
        _tags = tags;
    }

    public string Expression { get; }

    public bool Matches(string? tag) => _tags is null || (tag is not null && _tags.Contains(tag));

    /// <summary>Parses an expression; returns null with a reason when it is not one.</summary>
    public static TagFilter? TryParse(string? expression, out string? error)
    {
        error = null;
        if (expression is null || expression.Trim() == "*") return All;
        var tags = new HashSet<string>(StringComparer.Ordinal);
        foreach (var part in expression.Split("||"))
        {
            var tag = part.Trim();
            if (!Names.IsValidTag(tag))
            {
                error = $"tagFilter '{expression}' must be '*' or tags (1-127 chars, no '|' or whitespace) joined by '||'";
                return null;
            }
            tags.Add(tag);
        }
        return new TagFilter(string.Join(" || ", tags), tags);
    }

    public override string ToString() => Expression;
}
