#!/usr/bin/env bash
# A walkthrough of HalfMsgBroker's HTTP API with curl (and jq to pick fields out of answers).
# Runs against a broker at $BROKER (default http://127.0.0.1:8080) and exits non-zero when an
# answer is not what the contract says.
#
#   BROKER=http://127.0.0.1:8080 bash examples/curl/walkthrough.sh
#   BROKER=... HALFMSG_PRODUCER_KEY=... HALFMSG_CONSUMER_KEY=... bash examples/curl/walkthrough.sh
#
# Uses its own topic and groups (suffixed with a run id), so it can run beside other clients.
# With access control on (Broker:Auth:AdminKey set) it needs two keys, since a key has one role:
#   a producer key with  "producerGroups": ["curl-producer-*"], "topics": ["walkthrough-*"]
#   a consumer key with  "consumerGroups": ["curl-consumer-*"]
# Without them it works against a broker on loopback in Protected mode (no admin key), which serves
# loopback callers without a key; every POST, PUT and DELETE still says 'Content-Type: application/json'.
set -euo pipefail

BROKER="${BROKER:-http://127.0.0.1:8080}"
RUN="${RUN_ID:-$(date +%s)-$$}"
TOPIC="walkthrough-$RUN"
PRODUCER="curl-producer-$RUN"
CONSUMER="curl-consumer-$RUN"
J='Content-Type: application/json'

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
fail() { echo "walkthrough FAILED: $*" >&2; exit 1; }
# call AS METHOD PATH [JSON] [extra curl args...] -> prints the body, sets $STATUS.
# AS is producer, consumer or none: the key sent (HALFMSG_PRODUCER_KEY / HALFMSG_CONSUMER_KEY, when set).
# The key goes to curl on stdin (-K -), so it shows neither here nor in a process list.
call() {
  local as="$1" method="$2" path="$3" body="${4:-}"; shift 4 || shift $#
  local out key="" var="" ct="" args=(-sS -X "$method")
  case "$as" in
    producer) var=HALFMSG_PRODUCER_KEY ;;
    consumer) var=HALFMSG_CONSUMER_KEY ;;
  esac
  if [ -n "$var" ]; then key="${!var:-}"; fi
  # A state-changing call says it is JSON even without a body: the broker refuses it otherwise (415).
  if [ "$method" != GET ]; then ct="$J"; args+=(-H "$ct"); fi
  if [ -n "$body" ]; then args+=(-d "$body"); fi
  out="$(mktemp)"
  show "curl -X $method $BROKER$path${ct:+ -H '$ct'}${body:+ -d '$body'}${key:+ -H \"Authorization: Bearer \$$var\"}"
  if [ -n "$key" ]; then
    STATUS="$(printf 'header = "Authorization: Bearer %s"\n' "$key" \
      | curl -K - "${args[@]}" -o "$out" -w '%{http_code}' "$@" "$BROKER$path")"
  else
    STATUS="$(curl "${args[@]}" -o "$out" -w '%{http_code}' "$@" "$BROKER$path")"
  fi
  BODY="$(cat "$out")"; rm -f "$out"
  echo "-> $STATUS $BODY"
}
expect() { [ "$STATUS" = "$1" ] || fail "expected HTTP $1, got $STATUS: $BODY"; }

step "0. Is the broker up?"
call none GET /health/ready; expect 200

step "1. A consumer group subscribes to the topic (pull: no push URL)"
call consumer PUT "/v1/consumer-groups/$CONSUMER/subscriptions/$TOPIC" \
  '{"tagFilter": "created", "maxAttempts": 5, "onExhausted": "deadLetter"}'
[ "$STATUS" = 201 ] || [ "$STATUS" = 200 ] || fail "subscription: $STATUS"

step "2. The producer group says where the broker should ask about unfinished transactions"
# Nothing listens there in this walkthrough: checks answer 'unknown' (see step 7).
call producer PUT "/v1/producer-groups/$PRODUCER" '{"checkUrl": "http://127.0.0.1:9/halfmsg/check", "checkTimeoutMs": 1000}'
[ "$STATUS" = 201 ] || [ "$STATUS" = 200 ] || fail "producer group: $STATUS"

step "3. Send a half (prepared) message: stored, but invisible to consumers"
TX1="order-1001-$RUN"
call producer POST "/v1/topics/$TOPIC/half-messages" \
  "{\"producerGroup\": \"$PRODUCER\", \"transactionId\": \"$TX1\", \"tag\": \"created\",
    \"keys\": [\"order-1001\"], \"body\": {\"orderId\": 1001, \"sku\": \"apple\", \"quantity\": 2},
    \"checkImmunitySeconds\": 60}"
expect 201
MSG1="$(jq -r .messageId <<<"$BODY")"
[ "$(jq -r .state <<<"$BODY")" = prepared ] || fail "half message not prepared"
call consumer POST "/v1/consumer-groups/$CONSUMER/topics/$TOPIC/receive" '{"maxMessages": 10, "waitSeconds": 0}'
expect 200
[ "$(jq '.messages | length' <<<"$BODY")" = 0 ] || fail "a prepared message was delivered"
echo "(nothing to receive: the message is still prepared)"

step "4. ... the local transaction succeeds: commit"
call producer POST "/v1/transactions/$TX1/commit"; expect 200
call producer POST "/v1/transactions/$TX1/commit"; expect 200
echo "(commit is idempotent)"

step "5. The consumer receives it, and acks with the receipt handle"
call consumer POST "/v1/consumer-groups/$CONSUMER/topics/$TOPIC/receive" '{"maxMessages": 10, "waitSeconds": 5, "invisibleSeconds": 30}'
expect 200
[ "$(jq -r '.messages[0].messageId' <<<"$BODY")" = "$MSG1" ] || fail "committed message not received"
HANDLE="$(jq -r '.messages[0].receiptHandle' <<<"$BODY")"
call consumer POST "/v1/consumer-groups/$CONSUMER/ack" "{\"receiptHandles\": [\"$HANDLE\"]}"; expect 200
[ "$(jq -r .acked <<<"$BODY")" = 1 ] || fail "ack did not count"

step "6. A second order whose local transaction fails: roll back; it is never delivered"
TX2="order-1002-$RUN"
call producer POST "/v1/topics/$TOPIC/half-messages" \
  "{\"producerGroup\": \"$PRODUCER\", \"transactionId\": \"$TX2\", \"tag\": \"created\", \"body\": {\"orderId\": 1002}}"
expect 201
call producer POST "/v1/transactions/$TX2/rollback"; expect 200
call producer POST "/v1/transactions/$TX2/commit"; expect 409
echo "(committing a rolled-back transaction is a conflict: problem code $(jq -r .code <<<"$BODY"))"

step "7. A third one the producer never ends: the broker checks back (here: nobody answers)"
TX3="order-1003-$RUN"
call producer POST "/v1/topics/$TOPIC/half-messages" \
  "{\"producerGroup\": \"$PRODUCER\", \"transactionId\": \"$TX3\", \"tag\": \"created\",
    \"body\": {\"orderId\": 1003}, \"checkImmunitySeconds\": 1}"
expect 201
call producer GET "/v1/transactions?state=prepared&producerGroup=$PRODUCER"; expect 200
echo "(an operator's view of what hangs; after the check-back it shows checkCount and lastCheckResult)"
sleep "${CHECK_WAIT_SECONDS:-3}"
call producer GET "/v1/transactions/$TX3"; expect 200
echo "state=$(jq -r .state <<<"$BODY") checkCount=$(jq -r .checkCount <<<"$BODY") lastCheckResult=$(jq -r .lastCheckResult <<<"$BODY")"
call producer POST "/v1/transactions/$TX3/rollback"; expect 200
echo "(the operator ends it by hand)"

step "8. Plain messages with an Idempotency-Key: a retried send stores nothing twice"
call producer POST "/v1/topics/$TOPIC/messages" '{"tag": "created", "body": {"orderId": 1004}}' -H "Idempotency-Key: send-1004-$RUN"
expect 201
FIRST="$(jq -r .messageId <<<"$BODY")"
call producer POST "/v1/topics/$TOPIC/messages" '{"tag": "created", "body": {"orderId": 1004}}' -H "Idempotency-Key: send-1004-$RUN"
expect 200
[ "$(jq -r .messageId <<<"$BODY")" = "$FIRST" ] || fail "idempotent send stored a second message"

step "9. Receive it, nack it (retry in 1 s), receive it again as attempt 2, ack"
call consumer POST "/v1/consumer-groups/$CONSUMER/topics/$TOPIC/receive" '{"maxMessages": 1, "waitSeconds": 5}'; expect 200
HANDLE="$(jq -r '.messages[0].receiptHandle' <<<"$BODY")"
call consumer POST "/v1/consumer-groups/$CONSUMER/nack" "{\"receiptHandle\": \"$HANDLE\", \"retryAfterSeconds\": 1}"; expect 200
call consumer POST "/v1/consumer-groups/$CONSUMER/topics/$TOPIC/receive" '{"maxMessages": 1, "waitSeconds": 10}'; expect 200
[ "$(jq -r '.messages[0].attempt' <<<"$BODY")" = 2 ] || fail "nacked message not redelivered as attempt 2"
HANDLE="$(jq -r '.messages[0].receiptHandle' <<<"$BODY")"
call consumer POST "/v1/consumer-groups/$CONSUMER/ack" "{\"receiptHandles\": [\"$HANDLE\"]}"; expect 200

step "10. Look a message up: its state and its delivery to each consumer group"
call producer GET "/v1/messages/$MSG1"; expect 200
call consumer GET "/v1/consumer-groups/$CONSUMER"; expect 200

step "11. Bad input is a 4xx problem, never a 5xx"
call producer POST "/v1/topics/$TOPIC/messages" '{"body": 1, "delaySeconds": -1}'; expect 400
echo "(code: $(jq -r .code <<<"$BODY"))"

if [ -n "${HALFMSG_PRODUCER_KEY:-}" ]; then
  step "12. A key does what its role and scopes allow, and nothing else"
  call none GET "/v1/transactions/$TX1"; expect 401
  echo "(no key: $(jq -r .code <<<"$BODY"))"
  call consumer POST "/v1/topics/$TOPIC/messages" '{"body": 1}'; expect 403
  echo "(a consumer key cannot send: $(jq -r .detail <<<"$BODY"))"
fi

call consumer DELETE "/v1/consumer-groups/$CONSUMER/subscriptions/$TOPIC"
printf '\nwalkthrough OK\n'
