#!/usr/bin/env bash
# Runs coturn and turnpiked in turn on this machine with equivalent settings (REST auth, loopback
# peers allowed, same number of relay/worker threads, same relay port range size, minimal
# logging), drives each with the same turnpike-loadgen workload, and prints both RESULT lines
# and the turnpiked/coturn ratios. Server and load generator are pinned to different cores.
# Loopback only.
#
#   perf/compare_coturn.sh                        # one run per server at the default rate
#   perf/compare_coturn.sh --rate=80000 --duration=20
#   perf/compare_coturn.sh --sweep=20000,50000,100000,150000,200000
#   perf/compare_coturn.sh --servers=coturn       # only one of them
#
# Options (--key=value): allocations (200), rate (150000 packets/s in total, both directions
# together, i.e. half each way), size (160 payload bytes), duration (10 s), warmup (2 s),
# server-threads (1: coturn --relay-threads, turnpiked --worker-threads), loadgen-threads (1),
# server-cpus / loadgen-cpus (taskset lists; default: the first server-threads cores for the
# server, the rest for the generator), sweep (comma-separated rates), servers (coturn,turnpiked),
# build (build dir holding turnpiked and turnpike-loadgen, default build), priority (1: run
# everything at autogroup nice -20 so other sessions' jobs on a shared box do not take the
# cores; 0 to leave scheduling alone), loadgen-args (extra loadgen options, quoted).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ALLOCATIONS=200
RATE=150000
SIZE=160
DURATION=10
WARMUP=2
SERVER_THREADS=1
LOADGEN_THREADS=1
SERVER_CPUS=""
LOADGEN_CPUS=""
SWEEP=""
SERVERS="coturn,turnpiked"
BUILD="$ROOT/build"
PRIORITY=1
LOADGEN_ARGS=""
SECRET="compare-secret-$$"
REALM="compare.test"
COTURN_PORT=34780
TURNPIKED_PORT=34790
RELAY_PORTS=1000  # size of each relay port range

for arg in "$@"; do
  case "$arg" in
    --allocations=*) ALLOCATIONS=${arg#*=} ;;
    --rate=*) RATE=${arg#*=} ;;
    --size=*) SIZE=${arg#*=} ;;
    --duration=*) DURATION=${arg#*=} ;;
    --warmup=*) WARMUP=${arg#*=} ;;
    --server-threads=*) SERVER_THREADS=${arg#*=} ;;
    --loadgen-threads=*) LOADGEN_THREADS=${arg#*=} ;;
    --server-cpus=*) SERVER_CPUS=${arg#*=} ;;
    --loadgen-cpus=*) LOADGEN_CPUS=${arg#*=} ;;
    --sweep=*) SWEEP=${arg#*=} ;;
    --servers=*) SERVERS=${arg#*=} ;;
    --build=*) BUILD=$(realpath "${arg#*=}") ;;
    --priority=*) PRIORITY=${arg#*=} ;;
    --loadgen-args=*) LOADGEN_ARGS=${arg#*=} ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare_coturn.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

NPROC=$(nproc)
if [[ -z "$SERVER_CPUS" ]]; then
  if (( NPROC <= SERVER_THREADS )); then
    echo "compare_coturn.sh: need more than $SERVER_THREADS cores to keep the generator apart" >&2
    exit 2
  fi
  SERVER_CPUS="0-$((SERVER_THREADS - 1))"
  LOADGEN_CPUS="${LOADGEN_CPUS:-$SERVER_THREADS-$((NPROC - 1))}"
fi
LOADGEN_CPUS=${LOADGEN_CPUS:-$((NPROC - 1))}

LOADGEN=""
for candidate in "$BUILD/turnpike-loadgen" "$BUILD/perf/loadgen/turnpike-loadgen"; do
  [[ -x "$candidate" ]] && { LOADGEN=$candidate; break; }
done
[[ -n "$LOADGEN" ]] || { echo "compare_coturn.sh: no turnpike-loadgen in $BUILD" >&2; exit 2; }
TURNPIKED="$BUILD/turnpiked"
COTURN=$(command -v turnserver || true)

WORK=$(mktemp -d /tmp/compare_coturn.XXXXXX)
SERVER_PID=""
OLD_AUTOGROUP_NICE=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -n "$OLD_AUTOGROUP_NICE" ]]; then
    echo "$OLD_AUTOGROUP_NICE" > "/proc/$$/autogroup" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# With CONFIG_SCHED_AUTOGROUP every session shares the CPU equally whatever its processes' nice
# values, so on a box where other sessions compile, plain `nice` does not help; the autogroup's
# own nice does. It applies to this script's session only and is restored on exit.
if [[ "$PRIORITY" == 1 && -w /proc/$$/autogroup ]]; then
  OLD_AUTOGROUP_NICE=$(sed -n 's/.*nice \(-\{0,1\}[0-9]*\).*/\1/p' "/proc/$$/autogroup")
  echo -20 > "/proc/$$/autogroup" || OLD_AUTOGROUP_NICE=""
fi

wait_udp_port() {  # port pid
  for _ in $(seq 100); do
    kill -0 "$2" 2>/dev/null || return 1
    ss -Hulnp "sport = :$1" 2>/dev/null | grep -q "pid=$2" && return 0
    sleep 0.1
  done
  return 1
}

start_server() {  # name -> sets SERVER_PID, SERVER_PORT
  local name=$1
  case "$name" in
    coturn)
      [[ -n "$COTURN" ]] || { echo "turnserver not installed" >&2; return 1; }
      SERVER_PORT=$COTURN_PORT
      taskset -c "$SERVER_CPUS" "$COTURN" -n --listening-ip=127.0.0.1 \
        --listening-port=$SERVER_PORT --relay-ip=127.0.0.1 \
        --min-port=40000 --max-port=$((40000 + RELAY_PORTS - 1)) \
        --use-auth-secret --static-auth-secret="$SECRET" --realm="$REALM" \
        --allow-loopback-peers --no-cli --no-tls --no-dtls --no-tcp \
        --relay-threads="$SERVER_THREADS" --simple-log --no-stdout-log \
        --log-file="$WORK/coturn.log" >"$WORK/coturn.out" 2>&1 &
      SERVER_PID=$!
      ;;
    turnpiked)
      [[ -x "$TURNPIKED" ]] || { echo "no turnpiked in $BUILD" >&2; return 1; }
      SERVER_PORT=$TURNPIKED_PORT
      taskset -c "$SERVER_CPUS" "$TURNPIKED" --listening-ip=127.0.0.1 \
        --listening-port=$SERVER_PORT --relay-ip=127.0.0.1 \
        --min-port=42000 --max-port=$((42000 + RELAY_PORTS - 1)) \
        --use-auth-secret --static-auth-secret="$SECRET" --realm="$REALM" \
        --allow-loopback-peers --worker-threads="$SERVER_THREADS" \
        --drain-timeout=0 --control-listen=off --unauth-rate=0 \
        --log-file="$WORK/turnpiked.log" >"$WORK/turnpiked.out" 2>&1 &
      SERVER_PID=$!
      ;;
    *) echo "unknown server $name" >&2; return 1 ;;
  esac
  if ! wait_udp_port "$SERVER_PORT" "$SERVER_PID"; then
    echo "$name did not start; its output:" >&2
    cat "$WORK/$name.out" "$WORK/$name.log" 2>/dev/null | tail -20 >&2
    return 1
  fi
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

field() {  # RESULT-line key
  sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

run_one() {  # server rate -> prints loadgen output, sets LAST_RESULT
  local name=$1 rate=$2
  LAST_RESULT=""
  start_server "$name" || return 1
  local out="$WORK/$name-$rate.txt"
  taskset -c "$LOADGEN_CPUS" "$LOADGEN" --server=127.0.0.1:$SERVER_PORT --secret="$SECRET" \
    --realm="$REALM" --allocations="$ALLOCATIONS" --rate="$rate" --size="$SIZE" \
    --duration="$DURATION" --warmup="$WARMUP" --threads="$LOADGEN_THREADS" \
    --server-pid="$SERVER_PID" $LOADGEN_ARGS >"$out" 2>&1 || true
  stop_server
  sed "s/^/[$name] /" "$out"
  LAST_RESULT=$(grep '^RESULT' "$out" || true)
}

ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == "na" || a == "na" || b + 0 == 0)
    print "na"; else printf "%.2f", a / b }'
}

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)," \
  "kernel $(uname -r); coturn $("$COTURN" --version 2>/dev/null | head -1)"
echo "server cpus $SERVER_CPUS, loadgen cpus $LOADGEN_CPUS, server threads $SERVER_THREADS," \
  "allocations $ALLOCATIONS, size $SIZE, duration ${DURATION}s, warmup ${WARMUP}s," \
  "autogroup priority $PRIORITY; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

IFS=, read -r -a server_list <<<"$SERVERS"
IFS=, read -r -a rates <<<"${SWEEP:-$RATE}"
declare -A results
for rate in "${rates[@]}"; do
  for name in "${server_list[@]}"; do
    run_one "$name" "$rate" || echo "[$name] run failed"
    results[$name,$rate]=$LAST_RESULT
    echo
  done
done

echo "== summary (rate = total offered packets/s, both directions) =="
printf '%-10s %-10s %12s %12s %8s %9s %9s %10s %14s\n' rate server offered_pps delivered_pps \
  loss_pct p50_us p99_us server_cpu pkts/server_cpu_s
for rate in "${rates[@]}"; do
  for name in "${server_list[@]}"; do
    r=${results[$name,$rate]:-}
    printf '%-10s %-10s %12s %12s %8s %9s %9s %10s %14s\n' "$rate" "$name" \
      "$(field "$r" offered_pps)" "$(field "$r" delivered_pps)" "$(field "$r" loss_pct)" \
      "$(field "$r" p50_us)" "$(field "$r" p99_us)" "$(field "$r" server_cpu_s)" \
      "$(field "$r" pkts_per_server_cpu_s)"
  done
  c=${results[coturn,$rate]:-}
  t=${results[turnpiked,$rate]:-}
  if [[ -n "$c" && -n "$t" ]]; then
    echo "RATIO rate=$rate turnpiked/coturn delivered_pps=$(ratio "$(field "$t" delivered_pps)" \
      "$(field "$c" delivered_pps)") pkts_per_server_cpu_s=$(ratio \
      "$(field "$t" pkts_per_server_cpu_s)" "$(field "$c" pkts_per_server_cpu_s)")"
  fi
done
for rate in "${rates[@]}"; do
  for name in "${server_list[@]}"; do
    echo "$name rate=$rate ${results[$name,$rate]:-RESULT missing}"
  done
done
echo "logs and raw outputs: $WORK"
