#!/usr/bin/env bash
# Profile the broker under workload 1 (default durability, no RabbitMQ).
#   bench/profile.sh [--seconds N] [-- extra broker args, e.g. --Logging:LogLevel:Default=Warning]
# Phases while the load runs, one after another so they do not disturb each other:
#   dotnet-counters (System.Runtime, ASP.NET Core hosting, Kestrel) → perf record (CPU stacks with
#   the JIT's perf map) → dotnet-trace gc-verbose + contention + exceptions (allocations by type).
# Output: a folder of text summaries (path printed at the end); nothing is written under bench/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
export PATH="$PATH:$HOME/.dotnet/tools"
secs=75
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) secs="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for t in dotnet-counters dotnet-trace; do
  command -v "$t" >/dev/null || dotnet tool install -g "$t" >/dev/null
done

work="$(mktemp -d /tmp/halfmsg-profile.XXXXXX)"
out="$work/out"; mkdir -p "$out"
broker_pid="" gen_pid=""
stop_pid() { local p="$1" i; [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null || return 0; kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done; kill -KILL "$p" 2>/dev/null || true; }
cleanup() { stop_pid "$gen_pid"; stop_pid "$broker_pid"; }
trap cleanup EXIT
log() { printf '[profile %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

log "building"
dotnet publish "$root/broker/HalfMsgBroker.Broker.csproj" -c Release -o "$work/broker-bin" --nologo -v q >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
dotnet publish "$here/HalfMsgBroker.Bench.csproj" -c Release -o "$work/bench-bin" --nologo -v q >>"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port="$(free_port)"; h2c_port="$(free_port)"
# HTTP/1.1 and h2c endpoints, as bench/run.sh starts the broker; the load goes over h2c.
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 dotnet "$work/broker-bin/HalfMsgBroker.Broker.dll" \
  "--Kestrel:Endpoints:Http:Url=http://127.0.0.1:$port" "--Kestrel:Endpoints:H2c:Url=http://127.0.0.1:$h2c_port" --Kestrel:Endpoints:H2c:Protocols=Http2 \
  "--Broker:DataPath=$work/data" "${extra[@]}" >"$work/broker.log" 2>&1 &
broker_pid=$!
for ((i = 0; i < 300; i++)); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.2; done
log "broker pid $broker_pid on $port; load for ${secs}s"

dotnet "$work/bench-bin/HalfMsgBroker.Bench.dll" --broker-url "http://127.0.0.1:$port" --broker-h2c-url "http://127.0.0.1:$h2c_port" --broker-pid "$broker_pid" \
  --workloads 1 --modes Process --measure-seconds "$secs" --out "$out/load.md" >"$work/gen.log" 2>&1 &
gen_pid=$!
sleep 8
cpu0="$(awk '{print $14+$15}' /proc/$broker_pid/stat)"
log "dotnet-counters 15 s"
dotnet-counters collect -p "$broker_pid" --duration 00:00:00:15 --format csv -o "$out/counters.csv" \
  --counters System.Runtime,Microsoft.AspNetCore.Hosting,Microsoft.AspNetCore.Server.Kestrel,HalfMsgBroker >/dev/null 2>&1 || log "dotnet-counters failed"
log "perf record 15 s"
perf record -F 999 -g -p "$broker_pid" -o "$work/perf.data" -- sleep 15 >/dev/null 2>&1 || log "perf record failed"
log "dotnet-trace gc-verbose + contention + exceptions + JIT 10 s"
dotnet-trace collect -p "$broker_pid" --duration 00:00:00:10 -o "$work/gc.nettrace" \
  --providers "Microsoft-Windows-DotNETRuntime:0x1C011:5" >/dev/null 2>&1 || log "dotnet-trace failed"
cpu1="$(awk '{print $14+$15}' /proc/$broker_pid/stat)"
wait "$gen_pid" || true
gen_pid=""

log "summarising"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio --percent-limit 0.7 2>/dev/null | grep -v '^$' | head -120 >"$out/perf-self.txt" || true
perf report -i "$work/perf.data" --children --sort symbol --stdio -g none --percent-limit 3 2>/dev/null | grep -v '^$' | head -120 >"$out/perf-children.txt" || true
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^$' | head -30 >"$out/perf-dso.txt" || true
dotnet "$work/bench-bin/HalfMsgBroker.Bench.dll" --analyze-trace "$work/gc.nettrace" >"$out/allocations.md" 2>&1 || true
python3 - "$out/counters.csv" >"$out/counters.txt" <<'PY' || true
import csv, sys, collections
vals = collections.defaultdict(list)
with open(sys.argv[1]) as f:
    for row in csv.DictReader(f):
        try: vals[(row['Provider'], row['Counter Name'])].append(float(row['Mean/Increment']))
        except (KeyError, ValueError): pass
for (p, c), v in sorted(vals.items()):
    print(f"{p} | {c} | mean {sum(v)/len(v):.2f} | max {max(v):.2f}")
PY
echo "broker CPU during the profiled phases: $(( (cpu1 - cpu0) )) ticks" >"$out/cpu.txt"
cp "$work/gen.log" "$out/"
log "done: $out"
trap - EXIT; cleanup
echo "$out"
