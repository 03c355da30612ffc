#!/usr/bin/env bash
# Self-checking demo of transactional messages: OrderService -> broker -> InventoryService,
# with compensation back to OrderService and a best-effort NotificationConsumer.
#
#   bash examples/demo.sh            # builds, runs, checks; exit 0 only when every check holds
#
# It starts the broker and the four services on free loopback ports, places orders
# (most commit; some fail their local transaction; for some the order service is killed with
# SIGKILL between the half message and the commit, then restarted; some ask for more than the
# stock holds), lets InventoryService fail its first deliveries on purpose, and then checks:
#   - every committed order was reserved exactly once, or cancelled through `order-rejected`;
#   - no rolled-back order exists or was reserved;
#   - stock never went negative, and stock + reserved = initial stock per SKU;
#   - the killed orders were resolved by the broker's check-back;
#   - the failed deliveries were retried; the hopeless notifications were discarded;
#   - PaymentService's outbox: payments committed while its relay was off, then SIGKILLed and
#     restarted, each reach NotificationConsumer once (stored once by the broker); a declined payment never.
# Access control is on: the broker gets an admin key made for this run, the services get least-privilege
# keys from examples/compose/make-keys.sh (the script compose runs), the curl walkthrough and the Python
# producer get keys of their own, and the demo's own reads use the admin key (it is the operator).
# Everything it starts is stopped by PID on exit. Needs: dotnet, curl, jq, python3.
# Env: DEMO_KEEP=1 keeps the work folder (logs, databases); DEMO_TIMEOUT (s) bounds the wait.
set -euo pipefail
ulimit -c 0   # the FailFast of the 'crash' fault leaves no core file behind

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
START_TS=$(date +%s)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/halfmsg-demo.XXXXXX")"
SETTLE_TIMEOUT="${DEMO_TIMEOUT:-120}"
SECRET="demo-secret-$RANDOM$RANDOM"
ADMIN_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"   # 64 hex characters, new every run
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

# free_ports N: N distinct free loopback ports (all bound at once, then released)
free_ports() {
  python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# admin_curl ARGS...: curl as the operator. The admin key sits in a curl config file (mode 600), so it
# shows in no process list.
admin_curl() { curl -K "$WORK/admin.curlrc" "$@"; }

# make_key REQUEST: creates an API key (POST /v1/api-keys) and prints it
make_key() {
  admin_curl -fsS -H 'Content-Type: application/json' -d "$1" "$BROKER/v1/api-keys" | jq -er .key
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
          examples/NotificationConsumer/NotificationConsumer.csproj
          examples/PaymentService/PaymentService.csproj)
# One parallel build of a throw-away solution. Analyzers are skipped here: the projects' own builds
# (warnings as errors) check the code; the demo only needs the binaries.
( cd "$WORK" && dotnet new sln -n demo -o . >/dev/null && \
  dotnet sln demo.sl* add "${PROJECTS[@]/#/$ROOT/}" >/dev/null ) || die "could not make the build solution"
dotnet build "$(ls "$WORK"/demo.sl*)" -c "$CONFIG" -nologo -v quiet -clp:ErrorsOnly -nodeReuse:false \
  -p:RunAnalyzers=false -p:EnforceCodeStyleInBuild=false >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; die "build failed"; }
BUILT_TS=$(date +%s)
dll() { echo "$ROOT/$1/bin/$CONFIG/net10.0/$2.dll"; }
BROKER_DLL="$(dll broker HalfMsgBroker.Broker)"
ORDER_DLL="$(dll examples/OrderService HalfMsgBroker.Examples.OrderService)"
INVENTORY_DLL="$(dll examples/InventoryService HalfMsgBroker.Examples.InventoryService)"
NOTIFY_DLL="$(dll examples/NotificationConsumer HalfMsgBroker.Examples.NotificationConsumer)"
PAYMENT_DLL="$(dll examples/PaymentService HalfMsgBroker.Examples.PaymentService)"
for f in "$BROKER_DLL" "$ORDER_DLL" "$INVENTORY_DLL" "$NOTIFY_DLL" "$PAYMENT_DLL"; do [ -f "$f" ] || die "missing $f"; done

# ------------------------------------------------------------------------------------ start
read -r BROKER_PORT ORDER_PORT INVENTORY_PORT NOTIFY_PORT PAYMENT_PORT < <(free_ports 5)
BROKER="http://127.0.0.1:$BROKER_PORT"
ORDERS="http://127.0.0.1:$ORDER_PORT"
INVENTORY="http://127.0.0.1:$INVENTORY_PORT"
NOTIFY="http://127.0.0.1:$NOTIFY_PORT"
PAYMENTS="http://127.0.0.1:$PAYMENT_PORT"
mkdir -p "$WORK/broker-data"
( umask 077 && printf 'header = "Authorization: Bearer %s"\n' "$ADMIN_KEY" >"$WORK/admin.curlrc" )

export DOTNET_NOLOGO=1 ASPNETCORE_ENVIRONMENT=Production Logging__Console__FormatterName=simple
# What every service needs to reach the broker and verify its signatures.
export HalfMsg__BaseAddress="$BROKER" HalfMsg__SigningSecrets__0="$SECRET"

start_broker() {
  Broker__Auth__AdminKey="$ADMIN_KEY" dotnet "$BROKER_DLL" --urls "$BROKER" --contentRoot "$(dirname "$BROKER_DLL")" \
    --Broker:DataPath="$WORK/broker-data" \
    --Broker:Signing:Secret="$SECRET" \
    --Broker:Transactions:CheckAfter=00:00:02 \
    --Broker:Transactions:CheckInterval=00:00:01 \
    --Broker:Transactions:MaxChecks=60 \
    --Broker:Delivery:RetryBackoff:0=00:00:01 \
    --Broker:Delivery:RetryBackoff:1=00:00:01 \
    --Broker:Delivery:RetryBackoff:2=00:00:02 \
    --Broker:Delivery:RetryBackoff:3=00:00:02 \
    </dev/null >>"$WORK/broker.log" 2>&1 &
  PIDS[broker]=$!
}

start_orders() {
  dotnet "$ORDER_DLL" --urls "$ORDERS" --contentRoot "$(dirname "$ORDER_DLL")" \
    --HalfMsg:PublicBaseAddress="$ORDERS" \
    --OrderService:AllowFaults=true \
    --ApiKeys:Directory="$WORK/keys/order-service" \
    --ConnectionStrings:Orders="Data Source=$WORK/orders.db" \
    </dev/null >>"$WORK/order-service.log" 2>&1 &
  PIDS[orders]=$!
}

INITIAL_APPLE=40
INITIAL_PEAR=6
FAIL_FIRST=6
start_inventory() {
  dotnet "$INVENTORY_DLL" --urls "$INVENTORY" --contentRoot "$(dirname "$INVENTORY_DLL")" \
    --Inventory:PublicUrl="$INVENTORY" \
    --Inventory:InitialStock:apple=$INITIAL_APPLE \
    --Inventory:InitialStock:pear=$INITIAL_PEAR \
    --Inventory:FailFirstDeliveries=$FAIL_FIRST \
    --ApiKeys:Directory="$WORK/keys/inventory-service" \
    --ConnectionStrings:Inventory="Data Source=$WORK/inventory.db" \
    </dev/null >>"$WORK/inventory-service.log" 2>&1 &
  PIDS[inventory]=$!
}

NOTIFY_MAX_ATTEMPTS=3
start_notifications() {
  dotnet "$NOTIFY_DLL" --urls "$NOTIFY" --contentRoot "$(dirname "$NOTIFY_DLL")" \
    --Notifications:MaxAttempts=$NOTIFY_MAX_ATTEMPTS \
    --Notifications:UnreachableCustomers:0=ghost \
    --ApiKeys:Directory="$WORK/keys/notification-consumer" \
    </dev/null >>"$WORK/notification-consumer.log" 2>&1 &
  PIDS[notifications]=$!
}

# start_payments RUN_RELAY: PaymentService, with its outbox relay on (true) or off (false)
start_payments() {
  dotnet "$PAYMENT_DLL" --urls "$PAYMENTS" --contentRoot "$(dirname "$PAYMENT_DLL")" \
    --HalfMsg:Outbox:RunRelay="$1" \
    --ApiKeys:Directory="$WORK/keys/payment-service" \
    --ConnectionStrings:Payments="Data Source=$WORK/payments.db" \
    </dev/null >>"$WORK/payment-service.log" 2>&1 &
  PIDS[payments]=$!
}

log "starting broker on $BROKER"
start_broker
wait_http "$BROKER/health/ready" 60 || die "broker did not get ready"
# The services' keys, made the way compose makes them: one file per key in each service's folder.
BROKER="$BROKER" ADMIN_KEY="$ADMIN_KEY" OUT_DIR="$WORK/keys" sh "$ROOT/examples/compose/make-keys.sh" \
  >"$WORK/make-keys.log" 2>&1 || { cat "$WORK/make-keys.log"; die "make-keys.sh failed"; }
# The walkthrough names its topic and groups per run, hence the prefixes; the Python producer uses py-orders.
WALK_PRODUCER_KEY="$(make_key \
  '{"name":"curl-walkthrough-producer","role":"producer","producerGroups":["curl-producer-*"],"topics":["walkthrough-*"]}')" \
  || die "could not make the walkthrough's producer key"
WALK_CONSUMER_KEY="$(make_key '{"name":"curl-walkthrough-consumer","role":"consumer","consumerGroups":["curl-consumer-*"]}')" \
  || die "could not make the walkthrough's consumer key"
PYTHON_KEY="$(make_key \
  '{"name":"python-producer","role":"producer","producerGroups":["python-orders"],"topics":["py-orders"]}')" \
  || die "could not make the Python producer's key"
log "API keys made: 6 for the services, 3 for the walkthrough and the Python producer"
log "starting inventory ($INVENTORY), notifications ($NOTIFY), orders ($ORDERS)"
start_inventory; start_notifications; start_orders
wait_http "$INVENTORY/health" 60 || die "inventory service did not start"
wait_http "$NOTIFY/health" 60 || die "notification consumer did not start"
wait_http "$ORDERS/health" 60 || die "order service did not start"

# The services register their producer group and subscriptions once started; a subscription only
# receives messages committed after it exists, so wait for all of them before placing orders.
subscribed() {  # subscribed GROUP TOPIC
  admin_curl -fsS "$BROKER/v1/consumer-groups/$1" 2>/dev/null | jq -e --arg t "$2" 'any(.subscriptions[]; .topic == $t)' >/dev/null
}
deadline=$(($(date +%s) + 60))
until admin_curl -fsS -o /dev/null "$BROKER/v1/producer-groups/order-service" 2>/dev/null \
    && subscribed inventory orders && subscribed notifications orders && subscribed order-service order-rejected \
    && subscribed notifications payments; do
  [ "$(date +%s)" -lt "$deadline" ] || die "the services did not register with the broker"
  sleep 0.3
done
log "producer group and subscriptions registered"

# ------------------------------------------------------------------------------------ orders
declare -A EXPECT=()       # orderId -> commit | rollback
declare -A KIND=()         # orderId -> normal | big | local-fail | killed-after-local | killed-in-local | ghost
ORDER_SEQ=0

# place KIND SKU QTY [CUSTOMER] [FAULT]: sends one order in the background (see settle_placed)
declare -A FAULT=()
place() {
  local kind="$1" sku="$2" qty="$3" customer="${4:-alice}" fault="${5:-none}"
  ORDER_SEQ=$((ORDER_SEQ + 1))
  local id; id="d$(printf '%03d' "$ORDER_SEQ")"
  KIND[$id]="$kind"; FAULT[$id]="$fault"
  curl -sS -o "$WORK/placed/$id.json" -w '%{http_code}' --max-time 60 -H 'Content-Type: application/json' \
    -d "$(jq -nc --arg id "$id" --arg sku "$sku" --argjson qty "$qty" --arg c "$customer" --arg f "$fault" \
          '{orderId: $id, sku: $sku, quantity: $qty, customer: $c, fault: $f}')" \
    "$ORDERS/orders" >"$WORK/placed/$id.status" 2>/dev/null </dev/null &
  PIDS[curl-$id]=$!
  if [ $((ORDER_SEQ % 4)) = 0 ]; then settle_placed; fi   # at most 4 orders in flight
}

# settle_placed: waits for the orders in flight and records what must come of each
settle_placed() {
  local name id status
  for name in "${!PIDS[@]}"; do
    [[ "$name" == curl-* ]] || continue
    wait "${PIDS[$name]}" 2>/dev/null || true
    unset "PIDS[$name]"
  done
  for f in "$WORK"/placed/*.status; do
    [ -e "$f" ] || continue
    id="$(basename "$f" .status)"; status="$(cat "$f")"
    case "${FAULT[$id]}:$status" in
      none:201) EXPECT[$id]=commit ;;
      rollback:422) EXPECT[$id]=rollback ;;
      *:409) if [ "$(jq -r .code "$WORK/placed/$id.json" 2>/dev/null)" = lost-to-check-back ]; then
               # Slower than CheckAfter: the check-back answered rollback first and the transaction log
               # stopped the local transaction. Correct, and checked like any rolled-back order.
               EXPECT[$id]=rollback; KIND[$id]="${KIND[$id]}-lost-race"
               log "order $id: its local transaction lost the race to the check-back (rolled back, as it must)"
             else
               log "order $id (${KIND[$id]}): unexpected HTTP 409: $(cat "$WORK/placed/$id.json")"; FAILED=1; EXPECT[$id]=unknown
             fi ;;
      *) log "order $id (${KIND[$id]}): unexpected HTTP $status: $(cat "$WORK/placed/$id.json" 2>/dev/null)"
         FAILED=1; EXPECT[$id]=unknown ;;
    esac
    rm -f "$f"
  done
}

# place_and_kill KIND FAULT EXPECT: the service stops at the fault point between the half message and
# the commit; we SIGKILL it there (fault hang*), or it ends itself with Environment.FailFast (fault crash)
place_and_kill() {
  local kind="$1" fault="$2" expect="$3"
  settle_placed
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
  local point how
  point="$(grep -o "FAULT-POINT $id [a-zA-Z-]*" "$WORK/order-service.log" | head -1 | cut -d' ' -f3)"
  if [ "$fault" = crash ]; then
    how="the order service crashed itself (FailFast)"
  else
    kill -9 "${PIDS[orders]}" 2>/dev/null || true
    how="SIGKILLed the order service"
  fi
  wait "${PIDS[orders]}" 2>/dev/null || true
  log "order $id: $how at '$point'; restarting it"
  start_orders
  wait_http "$ORDERS/health" 60 || die "order service did not restart"
}

log "placing orders"
mkdir -p "$WORK/placed"
for i in $(seq 1 14); do place normal apple $((i % 3 + 1)); done      # 29 apples of 40
for i in 1 2 3 4; do place normal pear 2; done                         # 8 pears asked, 6 in stock
place big apple 500                                                    # never fits
place big pear 100
for i in 1 2 3 4; do place local-fail apple 1 alice rollback; done
place ghost apple 1 ghost                                              # notification never gets through
place ghost apple 1 ghost
place_and_kill killed-after-local hang commit                          # local tx committed, no commit call
place_and_kill killed-in-local hangInLocalTransaction rollback         # local tx never committed
for i in 1 2 3; do place normal apple 1; done                          # after the restarts
place_and_kill killed-after-local crash commit                         # same point, Environment.FailFast
settle_placed

# ------------------------------------------------------------------------------------ payments (outbox)
# PaymentService writes each payment and its message in one SQLite transaction (the SDK's outbox). It
# runs first with its relay off, so the committed payments wait in the table; then it is SIGKILLed and
# restarted with the relay on: the messages must still arrive, once each, and a declined payment never.
log "payments through the outbox: PaymentService with its relay off"
declare -A PAY_EXPECT=()   # paymentId -> sent | never
start_payments false
wait_http "$PAYMENTS/health" 60 || die "payment service did not start"
# pay ID AMOUNT STATUS OUTCOME: takes a payment, checks the HTTP status, records what must come of it
pay() {
  local status
  status=$(curl -sS -o "$WORK/pay-$1.json" -w '%{http_code}' --max-time 30 -H 'Content-Type: application/json' \
    -d "$(jq -nc --arg id "$1" --argjson amount "$2" '{paymentId: $id, orderId: ("order-" + $id), amount: $amount, customer: "alice"}')" \
    "$PAYMENTS/payments" || echo 000)
  if [ "$status" != "$3" ]; then log "CHECK FAILED: payment $1 answered $status, want $3: $(cat "$WORK/pay-$1.json")"; FAILED=1; fi
  PAY_EXPECT[$1]="$4"
}
pay p1 20 201 sent; pay p2 35 201 sent; pay p3 5000 422 never; pay p4 12 201 sent
pending=$(curl -fsS "$PAYMENTS/outbox" | jq .pending || echo "?")
if [ "$pending" != 3 ]; then log "CHECK FAILED: $pending outbox rows wait with the relay off, want 3"; FAILED=1; fi
kill -9 "${PIDS[payments]}" 2>/dev/null || true
wait "${PIDS[payments]}" 2>/dev/null || true
log "payments: 3 committed, none sent; SIGKILLed PaymentService, restarting it with its relay on"
start_payments true
wait_http "$PAYMENTS/health" 60 || die "payment service did not restart"
pay p5 40 201 sent   # the relay is on: sent at once (IOutbox.Notify after the commit)

# An order id names one transaction, once: reusing a committed or a rolled-back one is refused.
for id in d001 d021; do
  reuse=$(curl -sS -o "$WORK/reuse.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"orderId\": \"$id\", \"sku\": \"apple\", \"quantity\": 1}" "$ORDERS/orders" || echo 000)
  if [ "$reuse" != 409 ] || [ "$(jq -r .code "$WORK/reuse.json")" != order-exists ]; then
    log "CHECK FAILED: reusing order id $id answered $reuse $(cat "$WORK/reuse.json")"; FAILED=1
  fi
done

# ------------------------------------------------------------------------------------ settle
log "waiting for the system to settle (check-backs, retries, compensation)"
settled() {
  local prepared busy
  prepared=$(admin_curl -fsS "$BROKER/v1/transactions?state=prepared&producerGroup=order-service&limit=100" | jq '.transactions | length') || return 1
  [ "$prepared" = 0 ] || return 1
  [ "$(curl -fsS "$PAYMENTS/outbox" | jq .pending)" = 0 ] || return 1
  for group in inventory order-service notifications; do
    busy=$(admin_curl -fsS "$BROKER/v1/consumer-groups/$group" \
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
for id in "${!EXPECT[@]}"; do printf '%s %s %s\n' "$id" "${EXPECT[$id]}" "${KIND[$id]}"; done | sort >"$WORK/expected.txt"
# One Python process reads everything back (broker, OrderService, InventoryService) and checks it.
if BROKER="$BROKER" ADMIN_KEY="$ADMIN_KEY" ORDERS="$ORDERS" INVENTORY="$INVENTORY" EXPECTED="$WORK/expected.txt" \
   INITIAL="apple=$INITIAL_APPLE,pear=$INITIAL_PEAR" FAIL_FIRST="$FAIL_FIRST" NOTIFY_MAX_ATTEMPTS="$NOTIFY_MAX_ATTEMPTS" \
   SUMMARY="$WORK/summary.txt" python3 - <<'PY'
import json, os, sys, urllib.request
from collections import Counter

def get(base, path):
    request = urllib.request.Request(os.environ[base] + path)
    if base == "BROKER":  # the operator's view: the admin key
        request.add_header("Authorization", "Bearer " + os.environ["ADMIN_KEY"])
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.load(r)

failures = []
def check(ok, what):
    if not ok:
        failures.append(what)
    return ok

expected = [line.split() for line in open(os.environ["EXPECTED"]) if line.strip()]
orders = {o["orderId"]: o for o in get("ORDERS", "/orders")}
reservations = get("INVENTORY", "/reservations")
rejections = get("INVENTORY", "/rejections")
stock = {s["sku"]: s["available"] for s in get("INVENTORY", "/stock")}
stats = get("INVENTORY", "/stats")
reserved_count = Counter(r["orderId"] for r in reservations)
rejected_count = Counter(r["orderId"] for r in rejections)
max_attempts = int(os.environ["NOTIFY_MAX_ATTEMPTS"])
n = Counter()

for order_id, expect, kind in expected:
    tx = get("BROKER", f"/v1/transactions/order-{order_id}")
    state, resolved_by = tx.get("state"), tx.get("resolvedBy")
    res, rej = reserved_count[order_id], rejected_count[order_id]
    status = orders.get(order_id, {}).get("status", "absent")
    label = f"order {order_id} ({kind})"
    if expect == "commit":
        n["committed"] += 1
        check(state == "committed", f"{label}: broker state {state}, want committed")
        if res == 1 and rej == 0:
            n["reserved"] += 1
            check(status == "placed", f"{label}: reserved, but the order is {status}")
        elif res == 0 and rej == 1:
            n["cancelled"] += 1
            check(status == "cancelled", f"{label}: rejected by inventory, but the order is {status}, want cancelled")
        else:
            check(False, f"{label}: {res} reservation(s) and {rej} rejection(s), want exactly one of them")
        if kind == "big":
            check(rej == 1, f"{label}: asks for more than the stock holds, yet was not rejected")
    elif expect == "rollback":
        n["rolled_back"] += 1
        n["lost_race"] += kind.endswith("-lost-race")
        check(state == "rolledBack", f"{label}: broker state {state}, want rolledBack")
        check(res == 0, f"{label}: rolled back, yet reserved {res} time(s)")
        check(status == "absent", f"{label}: rolled back, yet OrderService has it as {status}")
    else:
        check(False, f"{label}: placing it failed")
    if kind.startswith("killed-"):
        if check(resolved_by == "check", f"{label}: resolvedBy {resolved_by}, want check"):
            n["by_check"] += 1
    if state == "committed":
        message = get("BROKER", f"/v1/messages/{tx['messageId']}")
        deliveries = {d["consumerGroup"]: d for d in message.get("deliveries", [])}
        if deliveries.get("inventory", {}).get("attempts", 0) > 1:
            n["retried"] += 1
        if kind == "ghost":
            d = deliveries.get("notifications", {})
            if check(d.get("state") == "discarded" and d.get("attempts") == max_attempts,
                     f"{label}: notification {d.get('state')}/{d.get('attempts')}, want discarded/{max_attempts}"):
                n["discarded"] += 1

check(all(c == 1 for c in reserved_count.values()), "some order was reserved more than once")
for pair in os.environ["INITIAL"].split(","):
    sku, initial = pair.split("=")
    taken = sum(r["quantity"] for r in reservations if r["sku"] == sku)
    available = stock.get(sku)
    check(available is not None and available >= 0, f"{sku}: stock {available} is negative")
    check(available is not None and available + taken == int(initial),
          f"{sku}: available {available} + reserved {taken} != initial {initial}")
check((stats.get("lowestAvailable") or 0) >= 0, f"stock went negative at some point ({stats.get('lowestAvailable')})")
failed_on_purpose = stats.get("deliveriesFailedOnPurpose", 0)
check(failed_on_purpose == int(os.environ["FAIL_FIRST"]),
      f"inventory failed {failed_on_purpose} deliveries on purpose, want {os.environ['FAIL_FIRST']}")
check(n["retried"] > 0, "no delivery to inventory was retried")
# Half of the failures happen after the reservation committed (a lost answer): each redelivery of those
# must be skipped by the idempotency helper.
check(stats.get("duplicatesSkipped", 0) >= int(os.environ["FAIL_FIRST"]) // 2,
      f"only {stats.get('duplicatesSkipped', 0)} redeliveries were skipped, want at least {int(os.environ['FAIL_FIRST']) // 2}")
check(n["by_check"] > 0, "no killed order was resolved by the check-back")

with open(os.environ["SUMMARY"], "w") as out:
    out.write(f"  orders placed                      {len(expected):3d}\n")
    out.write(f"  committed                          {n['committed']:3d}  (reserved {n['reserved']}, cancelled by compensation {n['cancelled']})\n")
    out.write(f"  rolled back                        {n['rolled_back']:3d}  (none reserved, none kept; {n['lost_race']} of them lost the race to an early check-back)\n")
    out.write(f"  resolved by check-back after kill  {n['by_check']:3d}\n")
    out.write(f"  deliveries failed on purpose       {failed_on_purpose:3d}  (orders delivered to inventory more than once: {n['retried']}; redeliveries skipped by the idempotency helper: {stats.get('duplicatesSkipped', 0)})\n")
    out.write(f"  notifications discarded            {n['discarded']:3d}  (after {max_attempts} attempts each)\n")
    out.write(f"  stock left                         {json.dumps(stock)}  (lowest seen {stats.get('lowestAvailable')})\n")
for f in failures:
    print(f"CHECK FAILED: {f}")
sys.exit(1 if failures else 0)
PY
then :; else FAILED=1; fi

# The outbox's payments: one receipt each at the consumer, one message each at the broker.
receipts="$(curl -fsS "$NOTIFY/receipts" || echo '{"sent": []}')"
payments_sent=0
for id in "${!PAY_EXPECT[@]}"; do
  got=$(jq --arg id "$id" '[.sent[] | select(.paymentId == $id)] | length' <<<"$receipts")
  stored=$(admin_curl -fsS "$BROKER/v1/messages?key=payment-$id&topic=payments" | jq '.messages | length' || echo "?")
  want=1; [ "${PAY_EXPECT[$id]}" = never ] && want=0
  if [ "$got" != "$want" ] || [ "$stored" != "$want" ]; then
    log "CHECK FAILED: payment $id (${PAY_EXPECT[$id]}): $got receipt(s), $stored stored message(s), want $want of each"; FAILED=1
  elif [ "$want" = 1 ]; then
    payments_sent=$((payments_sent + 1))
  fi
done

# ------------------------------------------------------------------------------------ extras
# The same broker, seen from outside .NET: the curl walkthrough and the Python producer.
log "running the curl walkthrough and the Python producer against the same broker"
if BROKER="$BROKER" HALFMSG_PRODUCER_KEY="$WALK_PRODUCER_KEY" HALFMSG_CONSUMER_KEY="$WALK_CONSUMER_KEY" \
   CHECK_WAIT_SECONDS=3 bash "$ROOT/examples/curl/walkthrough.sh" >"$WORK/walkthrough.log" 2>&1; then
  walkthrough=OK
else
  walkthrough=FAILED; FAILED=1; tail -n 15 "$WORK/walkthrough.log"
fi
if HALFMSG_BROKER="$BROKER" HALFMSG_API_KEY="$PYTHON_KEY" HALFMSG_SECRET="$SECRET" timeout 60 python3 "$ROOT/examples/python/producer.py" demo \
     --topic py-orders --db "$WORK/python-orders.db" --wait 30 >"$WORK/python.log" 2>&1; then
  python=OK
else
  python=FAILED; FAILED=1; tail -n 15 "$WORK/python.log"
fi

# ------------------------------------------------------------------------------------ access control
# Everyone above used a key; these two calls show the broker refusing what a key does not cover.
log "checking access control"
access=OK
no_key=$(curl -sS -o /dev/null -w '%{http_code}' "$BROKER/v1/transactions/order-d001" || echo 000)
if [ "$no_key" != 401 ]; then
  log "CHECK FAILED: a request without a key answered $no_key, want 401"; access=FAILED; FAILED=1
fi
# The Python producer's key (producer group python-orders) asks for an order-service transaction:
# the broker answers as if it did not exist, so a key cannot even learn another group's ids.
other_group=$(printf 'header = "Authorization: Bearer %s"\n' "$PYTHON_KEY" \
  | curl -sS -K - -o /dev/null -w '%{http_code}' "$BROKER/v1/transactions/order-d001" || echo 000)
if [ "$other_group" != 404 ]; then
  log "CHECK FAILED: a python-orders producer key reading an order-service transaction answered $other_group, want 404"
  access=FAILED; FAILED=1
fi

# ------------------------------------------------------------------------------------ summary
elapsed=$(($(date +%s) - START_TS))
echo
echo "================ HalfMsgBroker demo summary ================"
cat "$WORK/summary.txt" 2>/dev/null || true
printf '  payments through the outbox        %3d  (of %d taken: 1 declined and never sent; 3 committed with the relay off, SIGKILL, sent after the restart)\n' \
  "$payments_sent" "${#PAY_EXPECT[@]}"
printf '  curl walkthrough                   %s\n' "$walkthrough"
printf '  python producer                    %s\n' "$python"
printf '  access control                     %s  (%s)\n' "$access" "9 keys; no key: $no_key, another group's transaction: $other_group"
printf '  elapsed                            %ds (build %ds, run %ds)\n' "$elapsed" "$((BUILT_TS - START_TS))" "$((elapsed - BUILT_TS + START_TS))"
if [ "$FAILED" -eq 0 ]; then
  echo "  RESULT: all checks passed"
  echo "============================================================"
  exit 0
fi
echo "  RESULT: FAILED (see CHECK FAILED lines above)"
echo "============================================================"
exit 1
