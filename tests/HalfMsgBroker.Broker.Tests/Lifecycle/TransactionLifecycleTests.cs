using HalfMsgBroker.Configuration;
using HalfMsgBroker.Lifecycle;
using HalfMsgBroker.Storage;

namespace HalfMsgBroker.Tests.Lifecycle;

public sealed class TransactionLifecycleTests
{
    private static StoredMessage Prepared() => new()
    {
        Id = Guid.CreateVersion7(), Topic = "orders", Body = "{}"u8.ToArray(), State = MessageState.Prepared, TransactionId = "t", NextCheckAt = 100,
    };

    private static TransactionOptions Rules(int maxChecks, double maxPendingSeconds = 86400) => new()
    {
        MaxChecks = maxChecks, CheckInterval = TimeSpan.FromSeconds(60), MaxPendingTime = TimeSpan.FromSeconds(maxPendingSeconds),
    };

    [Fact]
    public void An_unreachable_producer_does_not_spend_a_check_and_is_retried_with_a_backoff_capped_at_the_interval()
    {
        var m = Prepared();
        var rules = Rules(1);
        var delays = new List<long>();
        for (var now = 1000L; delays.Count < 8; now += 1000)
        {
            TransactionLifecycle.BeginCheck(m, now, TimeSpan.FromSeconds(4));
            Assert.Equal(CheckOutcome.StillPrepared, TransactionLifecycle.ApplyCheckAnswer(m, 1, CheckAnswer.Unreachable, "connection refused", now, rules));
            delays.Add(m.NextCheckAt - now);
        }
        Assert.Equal(new long[] { 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000 }, delays);
        Assert.Equal(0, m.CheckCount);
        Assert.Equal(8, m.UnreachableCount);
        Assert.Equal(0, m.UnknownCount);

        // The one check MaxChecks allows is spent by the first answer that is not "unreachable".
        TransactionLifecycle.BeginCheck(m, 20_000, TimeSpan.FromSeconds(4));
        Assert.Equal(CheckOutcome.Exhausted, TransactionLifecycle.ApplyCheckAnswer(m, 1, CheckAnswer.Unknown, "http 503", 20_000, rules));
        Assert.Equal((1, 8, 1), (m.CheckCount, m.UnreachableCount, m.UnknownCount));
        Assert.Equal(ResolvedBy.CheckExhausted, m.ResolvedBy);
    }

    [Fact]
    public void Ask_again_later_waits_as_asked_up_to_the_maximum_and_spends_no_check()
    {
        var m = Prepared();
        var rules = Rules(1);
        rules.MaxRetryAfter = TimeSpan.FromSeconds(30);
        TransactionLifecycle.BeginCheck(m, 1000, TimeSpan.FromSeconds(4));
        Assert.Equal(CheckOutcome.StillPrepared,
            TransactionLifecycle.ApplyCheckAnswer(m, 1, CheckAnswer.Unknown, "unknown, retry after 5 s", 1000, rules, TimeSpan.FromSeconds(5)));
        Assert.Equal(6000, m.NextCheckAt);
        Assert.Equal((0, 1), (m.CheckCount, m.UnknownCount));

        TransactionLifecycle.BeginCheck(m, 6000, TimeSpan.FromSeconds(4));
        TransactionLifecycle.ApplyCheckAnswer(m, 1, CheckAnswer.Unknown, "unknown, retry after 3600 s", 6000, rules, TimeSpan.FromHours(1));
        Assert.Equal(36_000, m.NextCheckAt); // capped at MaxRetryAfter
        Assert.Equal(MessageState.Prepared, m.State);

        // Without a retry-after the answer spends the only check.
        TransactionLifecycle.BeginCheck(m, 36_000, TimeSpan.FromSeconds(4));
        Assert.Equal(CheckOutcome.Exhausted, TransactionLifecycle.ApplyCheckAnswer(m, 1, CheckAnswer.Unknown, "unknown", 36_000, rules));
    }

    [Fact]
    public void An_unreachable_producer_ends_as_check_exhausted_once_the_pending_time_is_up()
    {
        var m = Prepared();
        var rules = Rules(15, maxPendingSeconds: 10);
        TransactionLifecycle.BeginCheck(m, 9_000, TimeSpan.FromSeconds(4));
        Assert.Equal(CheckOutcome.StillPrepared, TransactionLifecycle.ApplyCheckAnswer(m, 1, CheckAnswer.Unreachable, "dns", 9_500, rules));
        Assert.Equal(10_000, m.NextCheckAt); // the deadline, not a backoff later
        Assert.False(TransactionLifecycle.ExhaustIfOutOfChecks(m, 9_999, rules));
        Assert.True(TransactionLifecycle.ExhaustIfOutOfChecks(m, 10_000, rules));
        Assert.Equal(ResolvedBy.CheckExhausted, m.ResolvedBy);
    }

    [Theory]
    [InlineData(true, MessageState.Committed)]
    [InlineData(false, MessageState.RolledBack)]
    public void Prepared_ends_as_asked_and_stops_being_checked(bool commit, MessageState expected)
    {
        var m = Prepared();
        Assert.Equal(EndOutcome.Applied, TransactionLifecycle.End(m, commit, ResolvedBy.Producer, 500));
        Assert.Equal(expected, m.State);
        Assert.Equal(ResolvedBy.Producer, m.ResolvedBy);
        Assert.Equal(500, m.ResolvedAt);
        Assert.Equal(0, m.NextCheckAt);
    }

    [Fact]
    public void Repeating_the_same_end_is_idempotent_and_changes_nothing()
    {
        var m = Prepared();
        TransactionLifecycle.End(m, true, ResolvedBy.Producer, 500);
        Assert.Equal(EndOutcome.AlreadyEnded, TransactionLifecycle.End(m, true, ResolvedBy.Check, 900));
        Assert.Equal(500, m.ResolvedAt);
        Assert.Equal(ResolvedBy.Producer, m.ResolvedBy);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_opposite_end_is_a_conflict(bool firstCommit)
    {
        var m = Prepared();
        TransactionLifecycle.End(m, firstCommit, ResolvedBy.Producer, 500);
        Assert.Equal(EndOutcome.Conflict, TransactionLifecycle.End(m, !firstCommit, ResolvedBy.Producer, 600));
        Assert.Equal(firstCommit ? MessageState.Committed : MessageState.RolledBack, m.State);
    }

    [Fact]
    public void A_check_answer_for_an_ended_transaction_is_ignored()
    {
        var m = Prepared();
        TransactionLifecycle.BeginCheck(m, 100, TimeSpan.FromSeconds(1));
        TransactionLifecycle.End(m, true, ResolvedBy.Producer, 150);
        Assert.Equal(CheckOutcome.Ignored, TransactionLifecycle.ApplyCheckAnswer(m, 1, CheckAnswer.Rollback, "rollback", 200, Rules(15)));
        Assert.Equal(MessageState.Committed, m.State);
        Assert.Null(m.LastCheckResult);
    }

    [Fact]
    public void An_answer_to_an_older_check_is_ignored()
    {
        var m = Prepared();
        TransactionLifecycle.BeginCheck(m, 100, TimeSpan.FromSeconds(1));
        TransactionLifecycle.BeginCheck(m, 1200, TimeSpan.FromSeconds(1));
        Assert.Equal(CheckOutcome.Ignored, TransactionLifecycle.ApplyCheckAnswer(m, 1, CheckAnswer.Commit, "commit", 1300, Rules(15)));
        Assert.Equal(MessageState.Prepared, m.State);
    }

    [Theory]
    [InlineData(CheckAnswer.Commit, CheckOutcome.Committed, MessageState.Committed)]
    [InlineData(CheckAnswer.Rollback, CheckOutcome.RolledBack, MessageState.RolledBack)]
    [InlineData(CheckAnswer.Unknown, CheckOutcome.StillPrepared, MessageState.Prepared)]
    public void A_current_check_answer_decides(CheckAnswer answer, CheckOutcome outcome, MessageState state)
    {
        var m = Prepared();
        TransactionLifecycle.BeginCheck(m, 100, TimeSpan.FromSeconds(1));
        Assert.Equal(outcome, TransactionLifecycle.ApplyCheckAnswer(m, 1, answer, "x", 200, Rules(15)));
        Assert.Equal(state, m.State);
        Assert.Equal(1, m.CheckCount);
        if (state != MessageState.Prepared) Assert.Equal(ResolvedBy.Check, m.ResolvedBy);
    }

    [Fact]
    public void Unknown_on_the_last_allowed_check_rolls_back_as_exhausted()
    {
        var m = Prepared();
        for (var i = 0; i < 3; i++) TransactionLifecycle.BeginCheck(m, 100 * i, TimeSpan.FromSeconds(1));
        Assert.Equal(CheckOutcome.Exhausted, TransactionLifecycle.ApplyCheckAnswer(m, 3, CheckAnswer.Unknown, "timeout", 400, Rules(3)));
        Assert.Equal(MessageState.RolledBack, m.State);
        Assert.Equal(ResolvedBy.CheckExhausted, m.ResolvedBy);
        Assert.Equal("timeout", m.LastCheckResult);
    }

    [Fact]
    public void A_message_out_of_checks_is_rolled_back_without_another_call()
    {
        var m = Prepared();
        m.CheckCount = 3;
        Assert.True(TransactionLifecycle.ExhaustIfOutOfChecks(m, 500, Rules(3)));
        Assert.Equal(ResolvedBy.CheckExhausted, m.ResolvedBy);
        Assert.False(TransactionLifecycle.ExhaustIfOutOfChecks(Prepared(), 500, Rules(3)));
    }

    [Fact]
    public void A_deferred_check_moves_later_without_being_counted()
    {
        var m = Prepared();
        Assert.True(TransactionLifecycle.DeferCheck(m, 150, 5000));
        Assert.Equal((5000L, 0), (m.NextCheckAt, m.CheckCount));
        // Not due (any more), or no longer prepared: nothing to move.
        Assert.False(TransactionLifecycle.DeferCheck(m, 150, 9000));
        TransactionLifecycle.End(m, true, ResolvedBy.Producer, 6000);
        Assert.False(TransactionLifecycle.DeferCheck(m, 6000, 9000));
    }
}
