#!/usr/bin/env bash
# HalfMsgBroker vs RabbitMQ, side by side on this machine.
#   bench/run.sh [--quick] [generator options, e.g. --workloads 1,2 --modes Process]
#   bench/run.sh --quick --workloads 1 --storage litedb,postgresql   # also the rows on PostgreSQL
# Installs RabbitMQ from Debian if missing, starts a private RabbitMQ node on loopback for the run,
# builds and publishes the broker (Release), runs the load generator (which starts one broker per
# workload on a fresh temp data path), writes bench/results/YYYY-MM-DD-<quick|full>.md and prints it.
# Everything started here is stopped by PID on exit; nothing is stopped by name.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
kind=full
pass=()
postgres=""
for a in "$@"; do
  case "$a" in
    --quick) kind=quick; pass+=("$a") ;;
    *postgresql*) postgres=1; pass+=("$a") ;;   # the value of --storage
    *) pass+=("$a") ;;
  esac
done

work="$(mktemp -d /tmp/halfmsg-bench.XXXXXX)"
# The generator's private PostgreSQL cluster (--storage postgresql): beside $work, not in it, since
# $work is root's alone and PostgreSQL runs as the postgres user.
pgdir="$work-pg"
[[ -n "$postgres" ]] && pass+=(--pg-folder "$pgdir")
pidfile="$work/broker.pids"
: >"$pidfile"
rabbit_pid="" rabbit_sh_pid="" epmd_pid=""

log() { printf '[run.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

stop_pid() { # stop_pid PID [grace-seconds]: SIGTERM, wait, SIGKILL — by PID only
  local pid="$1" grace="${2:-15}" i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  # Newest first: the brokers before the PostgreSQL they use (which the generator started first).
  while read -r p; do stop_pid "$p" 5; done < <(tac "$pidfile")
  stop_pid "$rabbit_pid" 20
  stop_pid "$rabbit_sh_pid" 5
  stop_pid "$epmd_pid" 5
  if [[ $rc -ne 0 ]]; then
    log "failed (exit $rc); logs kept in $work"
  elif [[ -z "${BENCH_KEEP:-}" ]]; then
    rm -rf "$work" "$pgdir"
  else
    log "work folder kept: $work"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- RabbitMQ ------------------------------------------------------------------------------------
if [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
  log "installing rabbitmq-server from Debian"
  # Keep the package's own service from starting: this script runs its own node.
  made_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  [[ -n "$made_policy" ]] && rm -f /usr/sbin/policy-rc.d
fi
# --- PostgreSQL (--storage postgresql): the generator starts its own cluster; it needs the binaries ---
if [[ -n "$postgres" ]] && ! ls /usr/local/bin/initdb /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "installing postgresql from Debian"
  made_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  [[ -n "$made_policy" ]] && rm -f /usr/sbin/policy-rc.d
fi
rabbit_version="$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null | sed 's/-.*//')"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
rport="$(free_port)"; dport="$(free_port)"; eport="$(free_port)"
rdir="$work/rabbit"
mkdir -p "$rdir/mnesia" "$rdir/log" "$rdir/home"
echo "[]." >"$rdir/enabled_plugins"
cat >"$rdir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$rport
loopback_users.guest = true
EOF

# A private epmd on its own loopback port, so no shared epmd is started or touched.
epmd_bin="$(ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -1)"
[[ -n "$epmd_bin" ]] || epmd_bin="$(command -v epmd)"
"$epmd_bin" -address 127.0.0.1 -port "$eport" >"$rdir/log/epmd.out" 2>&1 &
epmd_pid=$!

log "starting RabbitMQ $rabbit_version on 127.0.0.1:$rport"
(
  export HOME="$rdir/home" ERL_EPMD_PORT="$eport" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_NODENAME="bench$$@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$rport" \
    RABBITMQ_DIST_PORT="$dport" RABBITMQ_MNESIA_BASE="$rdir/mnesia" RABBITMQ_LOG_BASE="$rdir/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$rdir/enabled_plugins" RABBITMQ_CONFIG_FILE="$rdir/rabbitmq" \
    RABBITMQ_PID_FILE="$rdir/rabbit.pid"
  cd "$rdir"
  exec /usr/lib/rabbitmq/bin/rabbitmq-server >"$rdir/log/stdout.log" 2>&1
) &
rabbit_sh_pid=$!

# --- build (in parallel with RabbitMQ's start) ------------------------------------------------------
log "building broker and generator (Release)"
dotnet publish "$root/broker/HalfMsgBroker.Broker.csproj" -c Release -o "$work/broker-bin" --nologo -v q >"$work/build-broker.log" 2>&1 \
  || { cat "$work/build-broker.log" >&2; exit 1; }
dotnet publish "$here/HalfMsgBroker.Bench.csproj" -c Release -o "$work/bench-bin" --nologo -v q >"$work/build-bench.log" 2>&1 \
  || { cat "$work/build-bench.log" >&2; exit 1; }

for ((i = 0; i < 600; i++)); do
  if [[ -s "$rdir/rabbit.pid" ]] && (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null; then break; fi
  kill -0 "$rabbit_sh_pid" 2>/dev/null || { cat "$rdir/log/stdout.log" >&2; log "RabbitMQ exited"; exit 1; }
  sleep 0.1
done
rabbit_pid="$(cat "$rdir/rabbit.pid")"
[[ "$(cat "/proc/$rabbit_pid/comm" 2>/dev/null)" == beam.smp ]] || { log "RabbitMQ pid $rabbit_pid is not beam.smp"; exit 1; }
log "RabbitMQ ready (beam.smp pid $rabbit_pid)"

# --- run -------------------------------------------------------------------------------------------
commit="$(git -C "$root" log -1 --format='%h %s' 2>/dev/null || echo unknown)"
out="${BENCH_OUT:-$here/results/$(date -u +%Y-%m-%d)-$kind.md}"
mkdir -p "$here/results"
BENCH_PID_FILE="$pidfile" dotnet "$work/bench-bin/HalfMsgBroker.Bench.dll" \
  --broker-dll "$work/broker-bin/HalfMsgBroker.Broker.dll" \
  --work-dir "$work/runs" \
  --rabbit-port "$rport" --rabbit-pid "$rabbit_pid" --rabbit-version "$rabbit_version" \
  --broker-commit "$commit" \
  --command "bench/run.sh${*:+ $*}" \
  --out "$out" \
  "${pass[@]}"
log "results: $out"
