#!/usr/bin/env bash
# Self-checking demo of transactional messages: OrderService -> broker -> InventoryService,
# with compensation back to OrderService and a best-effort NotificationConsumer.
#
#   bash examples/demo.sh            # builds, runs, checks; exit 0 only when every check holds
#
# It starts the broker and the three services on free loopback ports, places orders
# (most commit; some fail their local transaction; for some the order service is killed with
# SIGKILL between the half message and the commit, then restarted; some ask for more than the
# stock holds), lets InventoryService fail its first deliveries on purpose, and then checks:
#   - every committed order was reserved exactly once, or cancelled through `order-rejected`;
#   - no rolled-back order exists or was reserved;
#   - stock never went negative, and stock + reserved = initial stock per SKU;
#   - the killed orders were resolved by the broker's check-back;
#   - the failed deliveries were retried; the hopeless notifications were discarded.
# Everything it starts is stopped by PID on exit. Needs: dotnet, curl, jq, python3.
# Env: DEMO_KEEP=1 keeps the work folder (logs, databases); DEMO_TIMEOUT (s) bounds the wait.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
START_TS=$(date +%s)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/halfmsg-demo.XXXXXX")"
SETTLE_TIMEOUT="${DEMO_TIMEOUT:-120}"
SECRET="demo-secret-$RANDOM$RANDOM"
CONFIG="${DEMO_CONFIGURATION:-Debug}"

declare -A PIDS=()          # name -> pid of everything we started
FAILED=0

log() { printf '[%4ss] %s\n' "$(($(date +%s) - START_TS))" "$*"; }
die() { log "FATAL: $*"; exit 1; }

stop_all() {
  local status=$?
  trap - EXIT INT TERM
  for name in "${!PIDS[@]}"; do
    local pid="${PIDS[$name]}"
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  done
  for name in "${!PIDS[@]}"; do
    local pid="${PIDS[$name]}" i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    for f in "$WORK"/*.log; do
      [ -e "$f" ] || continue
      echo "----- last lines of $(basename "$f") -----"; tail -n 25 "$f"
    done
  fi
  if [ -n "${DEMO_KEEP:-}" ]; then echo "work folder kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

for tool in dotnet curl jq python3; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS: until URL answers 2xx
wait_http() {
  local url="$1" deadline=$(($(date +%s) + $2))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}

# ------------------------------------------------------------------------------------ build
log "building broker and examples ($CONFIG)"
PROJECTS=(broker/HalfMsgBroker.Broker.csproj
          examples/OrderService/OrderService.csproj
          examples/InventoryService/InventoryService.csproj
          examples/NotificationConsumer/NotificationConsumer.csproj)
for p in "${PROJECTS[@]}"; do
  dotnet build "$p" -c "$CONFIG" -nologo -v quiet -clp:ErrorsOnly >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; die "build of $p failed"; }
done
dll() { echo "$ROOT/$1/bin/$CONFIG/net10.0/$2.dll"; }
BROKER_DLL="$(dll broker HalfMsgBroker.Broker)"
ORDER_DLL="$(dll examples/OrderService HalfMsgBroker.Examples.OrderService)"
INVENTORY_DLL="$(dll examples/InventoryService HalfMsgBroker.Examples.InventoryService)"
NOTIFY_DLL="$(dll examples/NotificationConsumer HalfMsgBroker.Examples.NotificationConsumer)"
for f in "$BROKER_DLL" "$ORDER_DLL" "$INVENTORY_DLL" "$NOTIFY_DLL"; do [ -f "$f" ] || die "missing $f"; done

# ------------------------------------------------------------------------------------ start
BROKER_PORT=$(free_port); ORDER_PORT=$(free_port); INVENTORY_PORT=$(free_port); NOTIFY_PORT=$(free_port)
BROKER="http://127.0.0.1:$BROKER_PORT"
ORDERS="http://127.0.0.1:$ORDER_PORT"
INVENTORY="http://127.0.0.1:$INVENTORY_PORT"
NOTIFY="http://127.0.0.1:$NOTIFY_PORT"
mkdir -p "$WORK/broker-data"

export DOTNET_NOLOGO=1 ASPNETCORE_ENVIRONMENT=Production Logging__Console__FormatterName=simple
# What every service needs to reach the broker and verify its signatures.
export HalfMsg__BaseAddress="$BROKER" HalfMsg__SigningSecrets__0="$SECRET"

start_broker() {
  dotnet "$BROKER_DLL" --urls "$BROKER" \
    --Broker:DataPath="$WORK/broker-data" \
    --Broker:Signing:Secret="$SECRET" \
    --Broker:Transactions:CheckAfter=00:00:02 \
    --Broker:Transactions:CheckInterval=00:00:01 \
    --Broker:Transactions:MaxChecks=60 \
    --Broker:Delivery:RetryBackoff:0=00:00:01 \
    --Broker:Delivery:RetryBackoff:1=00:00:01 \
    --Broker:Delivery:RetryBackoff:2=00:00:02 \
    --Broker:Delivery:RetryBackoff:3=00:00:02 \
    >>"$WORK/broker.log" 2>&1 &
  PIDS[broker]=$!
}

start_orders() {
  dotnet "$ORDER_DLL" --urls "$ORDERS" \
    --OrderService:PublicUrl="$ORDERS" \
    --OrderService:AllowFaults=true \
    --ConnectionStrings:Orders="Data Source=$WORK/orders.db" \
    >>"$WORK/order-service.log" 2>&1 &
  PIDS[orders]=$!
}

INITIAL_APPLE=40
INITIAL_PEAR=6
FAIL_FIRST=6
start_inventory() {
  dotnet "$INVENTORY_DLL" --urls "$INVENTORY" \
    --Inventory:PublicUrl="$INVENTORY" \
    --Inventory:InitialStock:apple=$INITIAL_APPLE \
    --Inventory:InitialStock:pear=$INITIAL_PEAR \
    --Inventory:FailFirstDeliveries=$FAIL_FIRST \
    --ConnectionStrings:Inventory="Data Source=$WORK/inventory.db" \
    >>"$WORK/inventory-service.log" 2>&1 &
  PIDS[inventory]=$!
}

NOTIFY_MAX_ATTEMPTS=3
start_notifications() {
  dotnet "$NOTIFY_DLL" --urls "$NOTIFY" \
    --Notifications:MaxAttempts=$NOTIFY_MAX_ATTEMPTS \
    --Notifications:UnreachableCustomers:0=ghost \
    >>"$WORK/notification-consumer.log" 2>&1 &
  PIDS[notifications]=$!
}

log "starting broker on $BROKER"
start_broker
wait_http "$BROKER/health/ready" 60 || die "broker did not get ready"
log "starting inventory ($INVENTORY), notifications ($NOTIFY), orders ($ORDERS)"
start_inventory; start_notifications; start_orders
wait_http "$INVENTORY/health" 60 || die "inventory service did not start"
wait_http "$NOTIFY/health" 60 || die "notification consumer did not start"
wait_http "$ORDERS/health" 60 || die "order service did not start"

# ------------------------------------------------------------------------------------ orders
declare -A EXPECT=()       # orderId -> commit | rollback
declare -A KIND=()         # orderId -> normal | big | local-fail | killed-after-local | killed-in-local | ghost
ORDER_SEQ=0

# place KIND SKU QTY [CUSTOMER] [FAULT] -> places one order, records what must come of it
place() {
  local kind="$1" sku="$2" qty="$3" customer="${4:-alice}" fault="${5:-none}"
  ORDER_SEQ=$((ORDER_SEQ + 1))
  local id; id="d$(printf '%03d' "$ORDER_SEQ")"
  KIND[$id]="$kind"
  local body
  body=$(jq -nc --arg id "$id" --arg sku "$sku" --argjson qty "$qty" --arg c "$customer" --arg f "$fault" \
    '{orderId: $id, sku: $sku, quantity: $qty, customer: $c, fault: $f}')
  local status
  status=$(curl -sS -o "$WORK/last-order.json" -w '%{http_code}' --max-time 30 \
    -H 'Content-Type: application/json' -d "$body" "$ORDERS/orders") || status=000
  case "$fault:$status" in
    none:201) EXPECT[$id]=commit ;;
    rollback:422) EXPECT[$id]=rollback ;;
    *) log "order $id ($kind): unexpected HTTP $status: $(cat "$WORK/last-order.json" 2>/dev/null)"; FAILED=1
       EXPECT[$id]=unknown ;;
  esac
}

# place_and_kill KIND FAULT EXPECT: the service stops at the fault point; we SIGKILL it there
place_and_kill() {
  local kind="$1" fault="$2" expect="$3"
  ORDER_SEQ=$((ORDER_SEQ + 1))
  local id; id="d$(printf '%03d' "$ORDER_SEQ")"
  KIND[$id]="$kind"; EXPECT[$id]="$expect"
  curl -sS -o /dev/null --max-time 60 -H 'Content-Type: application/json' \
    -d "$(jq -nc --arg id "$id" --arg f "$fault" '{orderId: $id, sku: "apple", quantity: 1, customer: "carol", fault: $f}')" \
    "$ORDERS/orders" >/dev/null 2>&1 &
  PIDS[curl-$id]=$!
  local deadline=$(($(date +%s) + 30))
  until grep -q "FAULT-POINT $id " "$WORK/order-service.log"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "order $id never reached its fault point"
    sleep 0.1
  done
  kill -9 "${PIDS[orders]}"
  wait "${PIDS[orders]}" 2>/dev/null || true
  log "order $id: SIGKILLed the order service at '$(grep -o "FAULT-POINT $id [a-zA-Z-]*" "$WORK/order-service.log" | head -1 | cut -d' ' -f3)'; restarting it"
  start_orders
  wait_http "$ORDERS/health" 60 || die "order service did not restart"
}

log "placing orders"
for i in $(seq 1 14); do place normal apple $((i % 3 + 1)); done      # 28 apples of 40
for i in 1 2 3 4; do place normal pear 2; done                         # 8 pears asked, 6 in stock
place big apple 500                                                    # never fits
place big pear 100
for i in 1 2 3 4; do place local-fail apple 1 alice rollback; done
place ghost apple 1 ghost                                              # notification never gets through
place ghost apple 1 ghost
place_and_kill killed-after-local hang commit                          # local tx committed, no commit call
place_and_kill killed-in-local hangInLocalTransaction rollback         # local tx never committed
for i in 1 2 3; do place normal apple 1; done                          # after the restarts
place_and_kill killed-after-local hang commit

# ------------------------------------------------------------------------------------ settle
log "waiting for the system to settle (check-backs, retries, compensation)"
settled() {
  local prepared busy
  prepared=$(curl -fsS "$BROKER/v1/transactions?state=prepared&producerGroup=order-service&limit=100" | jq '.transactions | length') || return 1
  [ "$prepared" = 0 ] || return 1
  for group in inventory order-service notifications; do
    busy=$(curl -fsS "$BROKER/v1/consumer-groups/$group" \
      | jq '[.subscriptions[].counts | .ready + .inFlight + .retrying] | add // 0') || return 1
    [ "$busy" = 0 ] || return 1
  done
}
deadline=$(($(date +%s) + SETTLE_TIMEOUT))
until settled; do
  if [ "$(date +%s)" -ge "$deadline" ]; then log "did not settle within ${SETTLE_TIMEOUT}s; checking anyway"; FAILED=1; break; fi
  sleep 1
done
sleep 1   # a compensation just acked may still be committing in OrderService

# ------------------------------------------------------------------------------------ check
log "checking"
curl -fsS "$ORDERS/orders" >"$WORK/orders.json"
curl -fsS "$INVENTORY/reservations" >"$WORK/reservations.json"
curl -fsS "$INVENTORY/rejections" >"$WORK/rejections.json"
curl -fsS "$INVENTORY/stock" >"$WORK/stock.json"
curl -fsS "$INVENTORY/stats" >"$WORK/inventory-stats.json"

check() {  # check DESCRIPTION CONDITION-COMMAND...
  local what="$1"; shift
  if "$@"; then return 0; fi
  log "CHECK FAILED: $what"; FAILED=1
}
count_res() { jq --arg id "$1" '[.[] | select(.orderId == $id)] | length' "$WORK/reservations.json"; }
count_rej() { jq --arg id "$1" '[.[] | select(.orderId == $id)] | length' "$WORK/rejections.json"; }
order_status() { jq -r --arg id "$1" '(.[] | select(.orderId == $id) | .status) // "absent"' "$WORK/orders.json"; }
eq() { [ "$1" = "$2" ]; }

committed=0 reserved=0 cancelled=0 rolled_back=0 by_check=0 discarded=0 retried=0
for id in $(printf '%s\n' "${!EXPECT[@]}" | sort); do
  tx=$(curl -fsS "$BROKER/v1/transactions/order-$id" || echo '{}')
  state=$(jq -r '.state // "missing"' <<<"$tx"); resolved_by=$(jq -r '.resolvedBy // "-"' <<<"$tx")
  res=$(count_res "$id"); rej=$(count_rej "$id"); st=$(order_status "$id")
  case "${EXPECT[$id]}" in
    commit)
      committed=$((committed + 1))
      check "order $id (${KIND[$id]}): broker state $state, want committed" eq "$state" committed
      if [ "$res" = 1 ] && [ "$rej" = 0 ]; then
        reserved=$((reserved + 1))
        check "order $id: reserved but order is $st" eq "$st" placed
      elif [ "$res" = 0 ] && [ "$rej" = 1 ]; then
        cancelled=$((cancelled + 1))
        check "order $id: rejected by inventory but order is $st, want cancelled" eq "$st" cancelled
      else
        check "order $id (${KIND[$id]}): $res reservations and $rej rejections, want exactly one of them" false
      fi
      if [ "${KIND[$id]}" = big ]; then check "order $id asks for more than the stock: must be rejected" eq "$rej" 1; fi
      if [ "${KIND[$id]}" = killed-after-local ]; then
        check "order $id: resolvedBy $resolved_by, want check" eq "$resolved_by" check
        [ "$resolved_by" = check ] && by_check=$((by_check + 1))
      fi
      ;;
    rollback)
      rolled_back=$((rolled_back + 1))
      check "order $id (${KIND[$id]}): broker state $state, want rolledBack" eq "$state" rolledBack
      check "order $id (${KIND[$id]}): rolled back but reserved $res time(s)" eq "$res" 0
      check "order $id (${KIND[$id]}): rolled back but the order is $st" eq "$st" absent
      if [ "${KIND[$id]}" = killed-in-local ]; then
        check "order $id: resolvedBy $resolved_by, want check" eq "$resolved_by" check
        [ "$resolved_by" = check ] && by_check=$((by_check + 1))
      fi
      ;;
    *) check "order $id: placing it failed" false ;;
  esac
  if [ "$state" = committed ]; then
    msg=$(jq -r .messageId <<<"$tx")
    m=$(curl -fsS "$BROKER/v1/messages/$msg")
    inv_attempts=$(jq '[.deliveries[] | select(.consumerGroup == "inventory") | .attempts] | max // 0' <<<"$m")
    [ "$inv_attempts" -gt 1 ] && retried=$((retried + 1))
    if [ "${KIND[$id]}" = ghost ]; then
      n=$(jq -c '[.deliveries[] | select(.consumerGroup == "notifications")][0] // {}' <<<"$m")
      check "order $id: notification delivery $n, want discarded after $NOTIFY_MAX_ATTEMPTS attempts" \
        eq "$(jq -r '"\(.state)/\(.attempts)"' <<<"$n")" "discarded/$NOTIFY_MAX_ATTEMPTS"
      [ "$(jq -r .state <<<"$n")" = discarded ] && discarded=$((discarded + 1))
    fi
  fi
done

dupes=$(jq '[group_by(.orderId)[] | select(length > 1)] | length' "$WORK/reservations.json")
check "$dupes orders reserved more than once" eq "$dupes" 0
for sku in apple pear; do
  initial=$INITIAL_APPLE; [ "$sku" = pear ] && initial=$INITIAL_PEAR
  available=$(jq --arg s "$sku" '.[] | select(.sku == $s) | .available' "$WORK/stock.json")
  taken=$(jq --arg s "$sku" '[.[] | select(.sku == $s) | .quantity] | add // 0' "$WORK/reservations.json")
  check "$sku stock is negative ($available)" test "$available" -ge 0
  check "$sku: available $available + reserved $taken != initial $initial" eq "$((available + taken))" "$initial"
done
low=$(jq '.lowestAvailable // 0' "$WORK/inventory-stats.json")
check "stock went negative at some point (lowest $low)" test "$low" -ge 0
failed_on_purpose=$(jq '.deliveriesFailedOnPurpose // 0' "$WORK/inventory-stats.json")
check "inventory failed $failed_on_purpose deliveries on purpose, want $FAIL_FIRST" eq "$failed_on_purpose" "$FAIL_FIRST"
check "no delivery to inventory was retried" test "$retried" -gt 0
check "no killed order was resolved by the check-back" test "$by_check" -gt 0

# ------------------------------------------------------------------------------------ extras
# The same broker, seen from outside .NET: the curl walkthrough and the Python producer.
log "running the curl walkthrough and the Python producer against the same broker"
if BROKER="$BROKER" CHECK_WAIT_SECONDS=3 bash "$ROOT/examples/curl/walkthrough.sh" >"$WORK/walkthrough.log" 2>&1; then
  walkthrough=OK
else
  walkthrough=FAILED; FAILED=1; tail -n 15 "$WORK/walkthrough.log"
fi
if HALFMSG_BROKER="$BROKER" HALFMSG_SECRET="$SECRET" timeout 60 python3 "$ROOT/examples/python/producer.py" demo \
     --topic py-orders --db "$WORK/python-orders.db" --wait 30 >"$WORK/python.log" 2>&1; then
  python=OK
else
  python=FAILED; FAILED=1; tail -n 15 "$WORK/python.log"
fi

# ------------------------------------------------------------------------------------ summary
elapsed=$(($(date +%s) - START_TS))
echo
echo "================ HalfMsgBroker demo summary ================"
printf '  orders placed                      %3d\n' "${#EXPECT[@]}"
printf '  committed                          %3d  (reserved %d, cancelled by compensation %d)\n' "$committed" "$reserved" "$cancelled"
printf '  rolled back                        %3d  (none reserved, none kept)\n' "$rolled_back"
printf '  resolved by check-back after kill  %3d\n' "$by_check"
printf '  deliveries failed on purpose       %3d  (messages delivered more than once: %d)\n' "$failed_on_purpose" "$retried"
printf '  notifications discarded            %3d  (after %d attempts each)\n' "$discarded" "$NOTIFY_MAX_ATTEMPTS"
printf '  stock left                         %s\n' "$(jq -c 'map({(.sku): .available}) | add' "$WORK/stock.json")"
printf '  curl walkthrough                   %s\n' "$walkthrough"
printf '  python producer                    %s\n' "$python"
printf '  elapsed                            %ds\n' "$elapsed"
if [ "$FAILED" -eq 0 ]; then
  echo "  RESULT: all checks passed"
  echo "============================================================"
  exit 0
fi
echo "  RESULT: FAILED (see CHECK FAILED lines above)"
echo "============================================================"
exit 1
