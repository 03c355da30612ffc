using System.Globalization;

namespace HalfMsgBroker.Tests.Support;

/// <summary>Reads samples out of a <c>/metrics</c> scrape (Prometheus' text format).</summary>
internal static class ScrapeText
{
    /// <summary>The value of the first sample of <paramref name="metric"/> whose labels include each of <paramref name="labels"/>; NaN when none.</summary>
    public static double Value(string scrape, string metric, params string[] labels)
    {
        foreach (var line in scrape.Split('\n'))
        {
            if (!line.StartsWith(metric, StringComparison.Ordinal) || line.Length == metric.Length || line[metric.Length] is not ('{' or ' ')) continue;
            if (!labels.All(l => line.Contains(l, StringComparison.Ordinal))) continue;
            var end = line.IndexOf('}', StringComparison.Ordinal);
            var value = line[(end < 0 ? metric.Length : end + 1)..].Trim().Split(' ')[0];
            return double.Parse(value, CultureInfo.InvariantCulture);
        }
        return double.NaN;
    }
}
