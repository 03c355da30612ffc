using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace HalfMsgBroker.Client;

/// <summary>What the local-transaction delegate of <see cref="ITransactionalProducer"/> is given.</summary>
/// <param name="TransactionId">The transaction id: record it in the local transaction (see <see cref="DbTransactionLog.RecordInLocalTransactionAsync"/>).</param>
/// <param name="MessageId">The half message's id.</param>
/// <param name="Topic">The topic.</param>
/// <param name="ProducerGroup">The producer group.</param>
public sealed record LocalTransactionContext(string TransactionId, string MessageId, string Topic, string ProducerGroup);

/// <summary>
/// What <see cref="ITransactionalProducer.SendInTransactionAsync{T}"/> returns when the local transaction
/// returned a state (when it throws, the exception propagates instead).
/// </summary>
/// <param name="TransactionId">The transaction id.</param>
/// <param name="MessageId">The half message's id.</param>
/// <param name="LocalState">What the local transaction returned.</param>
/// <param name="LeftToCheckBack">
/// False when the producer ended the transaction and the broker confirmed it: the message is committed
/// (delivered) for <see cref="LocalTransactionState.Commit"/>, rolled back (dropped) for
/// <see cref="LocalTransactionState.Rollback"/>. Also false when the producer sent the end one-way
/// (<see cref="TransactionalProducer.EndOneWay"/>): <see cref="Ending"/> then says how it went. True when the
/// producer did not end it: the local transaction returned <see cref="LocalTransactionState.Unknown"/> (no end
/// call is made), or the commit or rollback call failed (logged as a warning). The message then stays prepared
/// until the broker's check-back asks your <see cref="ITransactionChecker"/>, which decides.
/// </param>
public sealed record TransactionSendResult(string TransactionId, string MessageId, LocalTransactionState LocalState, bool LeftToCheckBack)
{
    internal static readonly Task<bool> Confirmed = Task.FromResult(true);
    internal static readonly Task<bool> NotConfirmed = Task.FromResult(false);

    /// <summary>
    /// The commit or rollback call: completes with true once the broker confirmed it, false when none was made or it
    /// failed (logged as a warning; the check-back then decides). Already complete unless the end was sent one-way
    /// (<see cref="TransactionalProducer.EndOneWay"/>); awaiting it is optional.
    /// </summary>
    public Task<bool> Ending { get; init; } = NotConfirmed;
}

/// <summary>
/// RocketMQ's <c>sendMessageInTransaction</c> for one producer group (<see cref="TransactionalProducer"/>
/// implements it; <c>AddTransactionalProducer</c> registers it). Mock it in your tests.
/// </summary>
public interface ITransactionalProducer
{
    /// <summary>The producer group whose check URL resolves this producer's transactions.</summary>
    string ProducerGroup { get; }

    /// <summary>
    /// Sends <paramref name="body"/> as a half message, runs <paramref name="localTransaction"/>, then commits
    /// on <see cref="LocalTransactionState.Commit"/> or rolls back on <see cref="LocalTransactionState.Rollback"/>.
    /// On <see cref="LocalTransactionState.Unknown"/> it returns without ending the transaction
    /// (<see cref="TransactionSendResult.LeftToCheckBack"/> is true) and throws nothing.
    /// </summary>
    /// <typeparam name="T">The body type.</typeparam>
    /// <param name="topic">The topic.</param>
    /// <param name="body">The message body.</param>
    /// <param name="localTransaction">The local work; runs only after the half message is stored.</param>
    /// <param name="options">Transaction id (generated when null), tag, keys, check immunity.</param>
    /// <param name="cancellationToken">Cancels the send and the local work (not the commit or rollback call once the local work ended).</param>
    /// <returns>The ids, the local state, and whether the check-back will decide.</returns>
    /// <exception cref="HalfMsgException">The half message could not be stored; the local transaction did not run.</exception>
    /// <remarks>
    /// An exception from <paramref name="localTransaction"/> propagates unchanged; the half message stays
    /// prepared and the check-back decides, as for <see cref="LocalTransactionState.Unknown"/>.
    /// </remarks>
    Task<TransactionSendResult> SendInTransactionAsync<T>(
        string topic,
        T body,
        LocalTransaction localTransaction,
        HalfMsgSendOptions? options = null,
        CancellationToken cancellationToken = default);

    /// <summary>
    /// Sends several messages, across topics, as one transaction (<c>POST /v1/transactions</c>), bound
    /// to <paramref name="localTransaction"/>: they are committed or rolled back together, and one
    /// check-back (about the first message) resolves them all. RocketMQ allows one message per transaction.
    /// Ends like the single-message overload.
    /// </summary>
    /// <param name="messages">1 to 100 messages (<see cref="HalfMsgClient.ToJson{T}"/> makes a body).</param>
    /// <param name="localTransaction">The local work; runs only after all the messages are stored. Its context names the first message.</param>
    /// <param name="transactionId">The transaction id; generated when null (<see cref="TransactionIds.New"/>).</param>
    /// <param name="checkImmunity">Time before the first check-back (0 to 24 h, whole seconds); null for the broker's <c>CheckAfter</c>.</param>
    /// <param name="cancellationToken">Cancels the send and the local work (not the commit or rollback call once the local work ended).</param>
    /// <returns>The ids (<see cref="TransactionSendResult.MessageId"/> is the first message's), the local state, and whether the check-back will decide.</returns>
    /// <exception cref="HalfMsgException">The messages could not be stored; the local transaction did not run.</exception>
    Task<TransactionSendResult> SendInTransactionAsync(
        IReadOnlyList<TransactionMessage> messages,
        LocalTransaction localTransaction,
        string? transactionId = null,
        TimeSpan? checkImmunity = null,
        CancellationToken cancellationToken = default);
}

/// <summary>
/// The local transaction of a transactional send: does the local work and says how it ended.
/// </summary>
/// <param name="context">The transaction and half-message ids.</param>
/// <param name="cancellationToken">Cancels the work.</param>
/// <returns>Commit, rollback, or unknown (leave it to the check-back).</returns>
public delegate Task<LocalTransactionState> LocalTransaction(LocalTransactionContext context, CancellationToken cancellationToken);

/// <summary>
/// RocketMQ's <c>sendMessageInTransaction</c> over HTTP: sends a half message, runs the local
/// transaction, then commits on <see cref="LocalTransactionState.Commit"/>, rolls back on
/// <see cref="LocalTransactionState.Rollback"/>, and leaves the outcome to the broker's check-back
/// (your <see cref="ITransactionChecker"/>) on <see cref="LocalTransactionState.Unknown"/>, when the
/// delegate throws, or when the process dies in between.
/// </summary>
public sealed class TransactionalProducer : ITransactionalProducer
{
    private readonly IHalfMsgClient _client;
    private readonly ILogger _logger;

    /// <summary>Creates a producer for one producer group.</summary>
    /// <param name="client">The broker client.</param>
    /// <param name="producerGroup">The producer group whose check URL resolves its transactions.</param>
    /// <param name="logger">Logger; null for none.</param>
    public TransactionalProducer(IHalfMsgClient client, string producerGroup, ILogger<TransactionalProducer>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(producerGroup);
        _client = client;
        ProducerGroup = producerGroup;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <inheritdoc />
    public string ProducerGroup { get; }

    /// <summary>
    /// End transactions as RocketMQ's producer does (<c>endTransactionOneway</c>): a send returns once the commit or
    /// rollback is on its way, without waiting for the broker's answer (<see cref="TransactionSendResult.Ending"/>
    /// completes with it). It takes one round trip to the broker off every transactional send, and it is safe because
    /// the half message was stored before the local transaction ran: an end that never reaches the broker leaves the message
    /// prepared, and the broker's check-back asks your <see cref="ITransactionChecker"/>, which decides. So set it only
    /// for a producer group with a check URL. Default false (from <see cref="TransactionalProducerOptions.EndOneWay"/>
    /// when registered with <c>AddTransactionalProducer</c>).
    /// </summary>
    public bool EndOneWay { get; init; }

    /// <inheritdoc />
    public async Task<TransactionSendResult> SendInTransactionAsync<T>(
        string topic,
        T body,
        LocalTransaction localTransaction,
        HalfMsgSendOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentNullException.ThrowIfNull(localTransaction);
        options ??= HalfMsgSendOptions.Default;
        if (options.TransactionId is null)
        {
            options = options with { TransactionId = TransactionIds.New() };
        }

        var half = await _client.SendHalfAsync(topic, ProducerGroup, body, options, cancellationToken).ConfigureAwait(false);
        return await RunLocalTransactionAsync(new LocalTransactionContext(half.TransactionId, half.MessageId, topic, ProducerGroup), localTransaction, cancellationToken)
            .ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<TransactionSendResult> SendInTransactionAsync(
        IReadOnlyList<TransactionMessage> messages,
        LocalTransaction localTransaction,
        string? transactionId = null,
        TimeSpan? checkImmunity = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(localTransaction);
        var sent = await _client.SendTransactionAsync(ProducerGroup, messages, transactionId, checkImmunity, cancellationToken).ConfigureAwait(false);
        var first = sent.Messages[0];
        return await RunLocalTransactionAsync(new LocalTransactionContext(sent.TransactionId, first.MessageId, first.Topic, ProducerGroup), localTransaction, cancellationToken)
            .ConfigureAwait(false);
    }

    private async Task<TransactionSendResult> RunLocalTransactionAsync(LocalTransactionContext context, LocalTransaction localTransaction, CancellationToken cancellationToken)
    {
        LocalTransactionState state;
        try
        {
            state = await localTransaction(context, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // RocketMQ: an exception is UNKNOW. The local transaction may or may not have committed
            // (e.g. a lost commit acknowledgement), so only the check-back can tell.
            _logger.LogWarning(ex, "Local transaction {TransactionId} threw; its half message is left to the check-back", context.TransactionId);
            throw;
        }

        if (state == LocalTransactionState.Unknown)
        {
            _logger.LogInformation("Local transaction {TransactionId} returned unknown; left to the check-back", context.TransactionId);
            return new TransactionSendResult(context.TransactionId, context.MessageId, state, LeftToCheckBack: true);
        }

        if (EndOneWay)
        {
            // The call is under way when EndAsync returns its task: its request has been handed to the connection.
            return new TransactionSendResult(context.TransactionId, context.MessageId, state, LeftToCheckBack: false) { Ending = EndAsync(context, state) };
        }

        var confirmed = await EndAsync(context, state).ConfigureAwait(false);
        return new TransactionSendResult(context.TransactionId, context.MessageId, state, LeftToCheckBack: !confirmed)
        {
            Ending = confirmed ? TransactionSendResult.Confirmed : TransactionSendResult.NotConfirmed,
        };
    }

    /// <summary>Commits or rolls back; false (logged) when the call failed, which leaves the outcome to the check-back.</summary>
    private async Task<bool> EndAsync(LocalTransactionContext context, LocalTransactionState state)
    {
        try
        {
            // Not cancelled by the caller's token: the local outcome is final, tell the broker.
            if (state == LocalTransactionState.Commit)
            {
                await _client.CommitAsync(context.TransactionId, CancellationToken.None).ConfigureAwait(false);
            }
            else
            {
                await _client.RollbackAsync(context.TransactionId, CancellationToken.None).ConfigureAwait(false);
            }

            return true;
        }
        catch (Exception ex) when (ex is HalfMsgException or HttpRequestException or Polly.Timeout.TimeoutRejectedException or TaskCanceledException)
        {
            _logger.LogWarning(ex, "Ending transaction {TransactionId} ({State}) failed; the check-back will resolve it", context.TransactionId, state);
            return false;
        }
    }
}

/// <summary>
/// Answers the broker's check-back for a transaction that was neither committed nor rolled back in time.
/// Implement it by looking in your own database (see <see cref="DbTransactionLog"/>) and map it with
/// <c>app.MapHalfMsgCheck("/halfmsg/check")</c>.
/// </summary>
public interface ITransactionChecker
{
    /// <summary>Says whether the local transaction of <paramref name="request"/> committed.</summary>
    /// <param name="request">The half message being checked.</param>
    /// <param name="cancellationToken">Cancelled when the broker gives up on the call.</param>
    /// <returns>Commit, rollback, or unknown (ask again later).</returns>
    Task<LocalTransactionState> CheckAsync(TransactionCheckRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// What <c>MapHalfMsgCheck</c> answers. By default <see cref="CheckAsync"/>'s state; implement it to
    /// answer "still running, ask again in N s" (<see cref="TransactionCheckResult.AskAgainIn"/>), which
    /// does not use up one of the broker's checks.
    /// </summary>
    /// <param name="request">The half message being checked.</param>
    /// <param name="cancellationToken">Cancelled when the broker gives up on the call.</param>
    /// <returns>The answer.</returns>
    async Task<TransactionCheckResult> AnswerAsync(TransactionCheckRequest request, CancellationToken cancellationToken = default) =>
        await CheckAsync(request, cancellationToken).ConfigureAwait(false);
}
