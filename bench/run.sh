#!/usr/bin/env bash
# bench/run.sh: wharf, nginx and HAProxy side by side, in front of the same
# three webtest backends, all on 127.0.0.1.
#
#   bench/run.sh            full run (14-16 minutes): wrk at 64 and 512
#                           connections, 5 interleaved runs of 10 s per proxy,
#                           then 15,000 idle keep-alive connections to each,
#                           then the gzip scenario at 64 connections
#   bench/run.sh --quick    smoke test (about 1 minute): 1 run of 2 s, 5 s hold
#
# Options:
#   --runs R          measured runs per proxy and concurrency (default 5)
#   --duration D      length of one wrk run, e.g. 10s (default 10s)
#   --conc LIST       wrk connection counts (default 64,512)
#   --conns N         idle connections per proxy (default 15000; 0 skips)
#   --hold D          how long they are held (default 30s)
#   --no-throughput   only the idle-connection test (and the gzip scenario)
#   --no-gzip         skip the gzip scenario
#   --gzip-only       only the gzip scenario
#
# What it does: installs nginx (nginx-light), haproxy and wrk from Debian's
# packages when missing; builds wharf, webtest and the bench/cmd/benchrun
# driver into a temporary directory; starts three webtest backends, then
# wharf (static upstreams), nginx (bench/nginx.conf) and HAProxy
# (bench/haproxy.cfg), each on a free 127.0.0.1 port; runs the driver, which
# prints Markdown tables and writes raw JSON to bench/results/. Last, the
# gzip scenario: the three proxies restarted compressing at gzip level 1,
# wrk at 64 connections with Accept-Encoding: gzip fetching webtest's 10 KiB
# JSON sample. Before each
# run the driver waits (at most 15 s) for the host to be idle, and it repeats
# once a run that other load disturbed. Every process it started is stopped
# on exit, also on Ctrl-C or failure. Nothing is pinned to a CPU. Needs Linux
# (/proc), and root or sudo only to install packages.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

QUICK=0 RUNS="" DURATION="" CONC="64,512" CONNS=15000 HOLD="" THROUGHPUT=1 GZIP=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --conc) CONC=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --hold) HOLD=$2; shift ;;
    --no-throughput) THROUGHPUT=0 ;;
    --no-gzip) GZIP=0 ;;
    --gzip-only) THROUGHPUT=0 CONNS=0 GZIP=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "run.sh: $*" >&2; exit 1; }
[ -r /proc/self/stat ] || die "needs Linux with /proc"
command -v go >/dev/null || die "Go toolchain not found"
START=$(date +%s)

# --- packages ---------------------------------------------------------------
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get to install them"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "missing ${need[*]}: run as root or install sudo"
    sudo=(sudo)
  fi
  echo "run.sh: installing from Debian's packages: ${need[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  pkgs=()
  for n in "${need[@]}"; do
    if [ "$n" = nginx ] && apt-cache policy nginx-light 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      pkgs+=(nginx-light)
    else
      pkgs+=("$n")
    fi
  done
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  for n in nginx haproxy wrk; do command -v "$n" >/dev/null || die "$n still missing after installing"; done
fi

# --- temporary directory and clean-up ----------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wharf-bench.XXXXXX")
chmod 755 "$TMP" # nginx workers may run as nobody
declare -A PID=()
BPIDS=()

stop_pid() { # stop_pid PID: TERM, then KILL after 5 s
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? name pid
  trap - EXIT INT TERM
  for name in "${!PID[@]}"; do stop_pid "${PID[$name]}"; done
  for pid in "${BPIDS[@]}"; do stop_pid "$pid"; done
  if [ $rc -ne 0 ]; then
    for f in "$TMP"/*.log; do
      [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build --------------------------------------------------------------------
echo "run.sh: building wharf, webtest and benchrun" >&2
export CGO_ENABLED=0
go build -o "$TMP/wharf" ./cmd/wharf
go build -o "$TMP/webtest" ./cmd/webtest
go build -o "$TMP/benchrun" ./bench/cmd/benchrun

# At most 20,000 open files per process on the reference machine: wharf
# inherits this; nginx and HAProxy set theirs in their configs.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 20000 ]; then ulimit -n 20000; else ulimit -n "$hard"; fi

mapfile -t PORTS < <("$TMP/benchrun" --free-ports 6)
B1=${PORTS[0]} B2=${PORTS[1]} B3=${PORTS[2]}
declare -A PORT=([wharf]=${PORTS[3]} [nginx]=${PORTS[4]} [haproxy]=${PORTS[5]})

render() { # render TEMPLATE OUT PORT
  local user=""
  [ "$(id -u)" -eq 0 ] && user="user nobody $(id -gn nobody 2>/dev/null || echo nogroup);"
  sed -e "s|@TMP@|$TMP|g" -e "s|@PORT@|$3|g" -e "s|@USER@|$user|g" \
    -e "s|@BACKEND1@|$B1|g" -e "s|@BACKEND2@|$B2|g" -e "s|@BACKEND3@|$B3|g" "$1" >"$2"
}
render bench/nginx.conf "$TMP/nginx.conf" "${PORT[nginx]}"
render bench/haproxy.cfg "$TMP/haproxy.cfg" "${PORT[haproxy]}"
nginx -t -q -p "$TMP/" -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" || die "bad nginx config"
haproxy -c -q -f "$TMP/haproxy.cfg" || die "bad haproxy config"

wait_port() { # wait_port NAME PID PORT
  local i
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || die "$1 exited at start"
    if (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$1 does not listen on 127.0.0.1:$3"
}

start_proxy() { # start_proxy NAME
  local port=${PORT[$1]} log="$TMP/$1.log"
  case "$1" in
    wharf)
      "$TMP/wharf" --listen "127.0.0.1:$port" --admin-listen '' \
        --upstream "127.0.0.1:$B1" --upstream "127.0.0.1:$B2" --upstream "127.0.0.1:$B3" \
        --log-level error --shutdown-timeout 1s >>"$log" 2>&1 &
      ;;
    nginx) nginx -p "$TMP/" -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" >>"$log" 2>&1 & ;;
    haproxy) haproxy -db -f "$TMP/haproxy.cfg" >>"$log" 2>&1 & ;;
  esac
  PID[$1]=$!
  wait_port "$1" "${PID[$1]}" "$port"
}
stop_proxy() { stop_pid "${PID[$1]}"; unset "PID[$1]"; }

for i in 1 2 3; do
  port=$B1; [ $i = 2 ] && port=$B2; [ $i = 3 ] && port=$B3
  "$TMP/webtest" --listen "127.0.0.1:$port" --name "webtest$i" --shutdown-timeout 1s 2>>"$TMP/webtest$i.log" &
  BPIDS+=($!)
  wait_port "webtest$i" $! "$port"
done

PROXIES=(wharf nginx haproxy)
start_all() { local p; for p in "${PROXIES[@]}"; do start_proxy "$p"; done; }
stop_all() { local p; for p in "${PROXIES[@]}"; do stop_proxy "$p"; done; }
proxy_args() {
  local p
  for p in "${PROXIES[@]}"; do printf -- '--proxy\n%s=127.0.0.1:%s,pid=%s\n' "$p" "${PORT[$p]}" "${PID[$p]}"; done
}

common=(--wrk "$(command -v wrk)" --wharf-bin "$TMP/wharf" --out bench/results)
rev=$(git describe --always --dirty 2>/dev/null || true)
[ -n "$rev" ] && common+=(--wharf-rev "$rev")
[ $QUICK = 1 ] && common+=(--quick)
[ -n "$HOLD" ] && common+=(--hold "$HOLD")
echo "run.sh: backends on 127.0.0.1:$B1,$B2,$B3; wharf :${PORT[wharf]}, nginx :${PORT[nginx]}, haproxy :${PORT[haproxy]}" >&2

if [ $THROUGHPUT = 1 ]; then
  start_all
  args=("${common[@]}" --conc "$CONC" --backend-pids "$(IFS=,; echo "${BPIDS[*]}")")
  [ -n "$RUNS" ] && args+=(--runs "$RUNS")
  [ -n "$DURATION" ] && args+=(--duration "$DURATION")
  mapfile -t pargs < <(proxy_args)
  "$TMP/benchrun" "${args[@]}" "${pargs[@]}"
  stop_all
  echo
fi

if [ "$CONNS" -gt 0 ]; then
  # Fresh proxies: the memory a throughput run left behind is not counted.
  start_all
  mapfile -t pargs < <(proxy_args)
  "$TMP/benchrun" "${common[@]}" --conns "$CONNS" "${pargs[@]}"
  stop_all
fi

# --- gzip scenario -------------------------------------------------------------
# The same proxies, each compressing application/json at gzip level 1 (HAProxy
# is built with libslz, which has a single level of its own): nginx's and
# HAProxy's rendered configs get their gzip lines in place of the @GZIP@
# comment, wharf its WHARF_GZIP* variables.
gzip_scenario() {
  sed -i -e 's|# @GZIP@|gzip on; gzip_comp_level 1; gzip_min_length 20; gzip_vary on; gzip_types application/json;|' "$TMP/nginx.conf"
  sed -i -e 's|# @GZIP@|compression algo gzip\n    compression type application/json|' "$TMP/haproxy.cfg"
  nginx -t -q -p "$TMP/" -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" || die "bad nginx gzip config"
  haproxy -c -q -f "$TMP/haproxy.cfg" || die "bad haproxy gzip config"
  export WHARF_GZIP=true WHARF_GZIP_LEVEL=1 WHARF_GZIP_TYPES=application/json
  start_all
  local args=("${common[@]}" --gzip --conc 64 --backend-pids "$(IFS=,; echo "${BPIDS[*]}")")
  [ -n "$RUNS" ] && args+=(--runs "$RUNS")
  [ -n "$DURATION" ] && args+=(--duration "$DURATION")
  mapfile -t pargs < <(proxy_args)
  "$TMP/benchrun" "${args[@]}" "${pargs[@]}"
  stop_all
  unset WHARF_GZIP WHARF_GZIP_LEVEL WHARF_GZIP_TYPES
}
if [ $GZIP = 1 ]; then
  echo
  gzip_scenario
fi

echo >&2
echo "run.sh: done in $(( $(date +%s) - START )) s" >&2
