#!/usr/bin/env bash
# bench/run.sh: wharf, nginx and HAProxy side by side, in front of the same
# three webtest backends, all on 127.0.0.1.
#
#   bench/run.sh            full run (22-27 minutes): wrk at 64 and 512
#                           connections, at 64 over https, at 32 over https
#                           with a handshake per request, and at 64 fetching
#                           a 10 KiB JSON answer gzipped at level 1; h2load
#                           at 64 connections of 8 streams over HTTP/2; 5
#                           interleaved runs of 10 s per proxy, then 15,000
#                           idle keep-alive connections to each
#   bench/run.sh --quick    smoke test (about 1 minute): 1 run of 2 s, 5 s hold
#
# Options:
#   --runs R          measured runs per proxy and concurrency (default 5)
#   --duration D      length of one wrk run, e.g. 10s (default 10s)
#   --conc LIST       wrk connection counts over HTTP (default 64,512; '' for none)
#   --tls-conc LIST   wrk connection counts over https, keep-alive (default 64;
#                     '' for none)
#   --handshake-conc LIST  wrk connection counts over https with
#                     "Connection: close", a full TLS handshake per request
#                     (default 32; '' for none)
#   --gzip-conc LIST  wrk connection counts fetching webtest's 10 KiB JSON
#                     sample with Accept-Encoding: gzip from listeners that
#                     compress it at gzip level 1 (default 64; '' for none)
#   --h2-conc LIST    h2load connection counts over https with HTTP/2,
#                     negotiated by ALPN on the same TLS listeners, 8
#                     concurrent streams per connection (h2load -m8)
#                     (default 64; '' for none)
#   --gzip-only       only the gzip load (no other load, no idle connections)
#   --conns N         idle connections per proxy (default 15000; 0 skips)
#   --hold D          how long they are held (default 30s)
#   --no-throughput   only the idle-connection test
#
# Environment:
#   WHARF_BIN=PATH    run this wharf binary (for every wharf process of the
#                     run) instead of building one from the tree; the report
#                     gives its path instead of a revision
#   WHARF_BASE_BIN=PATH  run a second wharf from this binary, "wharf-base",
#                     beside the others on the plain HTTP loads (--conc) and
#                     in the idle-connection test, interleaved with them,
#                     with the same flags as wharf; e.g. one built from an
#                     older commit, to compare it with the tree's side by
#                     side:
#                       mkdir /tmp/wharf-old && git archive b6c3b70 | tar -xC /tmp/wharf-old
#                       (cd /tmp/wharf-old && go build -o /tmp/wharf-b6c3b70 ./cmd/wharf)
#                       WHARF_BASE_BIN=/tmp/wharf-b6c3b70 WHARF_BASE_REV=b6c3b70 \
#                         bench/run.sh --conns 0 --conc 64 --tls-conc '' \
#                         --handshake-conc '' --gzip-conc '' --h2-conc ''
#                     It must accept --listen, --admin-listen, --max-conns,
#                     --upstream, --log-level and --shutdown-timeout.
#   WHARF_BASE_REV=TEXT  what wharf-base was built from, for the report
#                     (default: the path)
#
# What it does: installs nginx (nginx-light), haproxy, wrk and, for the
# HTTP/2 load, h2load (nghttp2-client) from Debian's packages when missing;
# builds wharf, webtest and the bench/cmd/benchrun driver into a temporary
# directory; starts three webtest backends, then
# wharf (static upstreams), nginx (bench/nginx.conf) and HAProxy
# (bench/haproxy.cfg), each on free 127.0.0.1 ports (plain, TLS offering
# HTTP/2 and HTTP/1.1 by ALPN, and one that compresses JSON at gzip level
# 1); runs the driver, which
# prints Markdown tables and writes raw JSON to bench/results/. Before each
# run the driver waits (at most 15 s) for the host to be idle, and it repeats
# once a run that other load disturbed. Every process it started is stopped
# on exit, also on Ctrl-C or failure. Nothing is pinned to a CPU. Needs Linux
# (/proc), and root or sudo only to install packages.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
SCRIPT=run.sh
. bench/lib.sh

QUICK=0 RUNS="" DURATION="" CONC="64,512" TLSCONC="64" HSCONC="32" GZIPCONC="64" H2CONC="64" CONNS=15000 HOLD="" THROUGHPUT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --conc) CONC=$2; shift ;;
    --tls-conc) TLSCONC=$2; shift ;;
    --handshake-conc) HSCONC=$2; shift ;;
    --gzip-conc) GZIPCONC=$2; shift ;;
    --h2-conc) H2CONC=$2; shift ;;
    --gzip-only) CONC="" TLSCONC="" HSCONC="" H2CONC="" CONNS=0 ;;
    --conns) CONNS=$2; shift ;;
    --hold) HOLD=$2; shift ;;
    --no-throughput) THROUGHPUT=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

[ -r /proc/self/stat ] || die "needs Linux with /proc"
command -v go >/dev/null || die "Go toolchain not found"
START=$(date +%s)

# --- packages ---------------------------------------------------------------
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ -n "$H2CONC" ] && [ $THROUGHPUT = 1 ]; then command -v h2load >/dev/null 2>&1 || need+=(h2load); fi
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
    elif [ "$n" = h2load ]; then
      pkgs+=(nghttp2-client)
    else
      pkgs+=("$n")
    fi
  done
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  for n in "${need[@]}"; do command -v "$n" >/dev/null || die "$n still missing after installing"; done
fi

# --- temporary directory and clean-up ----------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wharf-bench.XXXXXX")
chmod 755 "$TMP" # nginx workers may run as nobody
declare -A PID=()
BPIDS=()

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
export CGO_ENABLED=0
if [ -n "${WHARF_BIN:-}" ]; then
  [ -x "$WHARF_BIN" ] || die "WHARF_BIN=$WHARF_BIN is not an executable"
  echo "run.sh: wharf from WHARF_BIN=$WHARF_BIN; building webtest and benchrun" >&2
  cp "$WHARF_BIN" "$TMP/wharf"
else
  echo "run.sh: building wharf, webtest and benchrun" >&2
  go build -o "$TMP/wharf" ./cmd/wharf
fi
if [ -n "${WHARF_BASE_BIN:-}" ]; then
  [ -x "$WHARF_BASE_BIN" ] || die "WHARF_BASE_BIN=$WHARF_BASE_BIN is not an executable"
  cp "$WHARF_BASE_BIN" "$TMP/wharf-base"
fi
go build -o "$TMP/webtest" ./cmd/webtest
go build -o "$TMP/benchrun" ./bench/cmd/benchrun

# At most 20,000 open files per process on the reference machine: wharf
# inherits this; nginx and HAProxy set theirs in their configs. The same
# connection cap for all three: nginx's worker_connections and HAProxy's
# maxconn are 19000, and wharf's --max-conns would otherwise be derived
# from the limit, (20000 - 64) / 2, below the 15,000 idle connections.
MAXCONNS=19000
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 20000 ]; then ulimit -n 20000; else ulimit -n "$hard"; fi

mapfile -t PORTS < <("$TMP/benchrun" --free-ports 13)
B1=${PORTS[0]} B2=${PORTS[1]} B3=${PORTS[2]}
declare -A PORT=([wharf]=${PORTS[3]} [nginx]=${PORTS[4]} [haproxy]=${PORTS[5]})
# The TLS listeners (HTTP/1.1, and HTTP/2 by ALPN): nginx and HAProxy serve
# them from the same process as the plain ones; wharf,
# which has one --listen, runs a second process (wharf-tls) for them.
declare -A TLSPORT=([wharf]=${PORTS[6]} [nginx]=${PORTS[7]} [haproxy]=${PORTS[8]})
PORT[wharf-tls]=${TLSPORT[wharf]}
# The listeners that compress, for the gzip load: a third server block of
# nginx, a second frontend of HAProxy, a third wharf process (wharf-gzip).
# The plain listeners compress nothing: their rows are measured without it.
declare -A GZIPPORT=([wharf]=${PORTS[9]} [nginx]=${PORTS[10]} [haproxy]=${PORTS[11]})
PORT[wharf-gzip]=${GZIPPORT[wharf]}
# The second wharf (WHARF_BASE_BIN), plain HTTP only.
PORT[wharf-base]=${PORTS[12]}

# One ECDSA P-256 certificate for all three, made for this run.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null || die "openssl could not make a certificate"
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/haproxy.pem"
chmod 644 "$TMP/key.pem" "$TMP/haproxy.pem" # nginx workers may run as nobody; the key is this run's only

render() { # render TEMPLATE OUT PORT TLSPORT GZIPPORT
  local user=""
  [ "$(id -u)" -eq 0 ] && user="user nobody $(id -gn nobody 2>/dev/null || echo nogroup);"
  sed -e "s|@TMP@|$TMP|g" -e "s|@PORT@|$3|g" -e "s|@TLSPORT@|$4|g" -e "s|@GZIPPORT@|$5|g" -e "s|@USER@|$user|g" \
    -e "s|@BACKEND1@|$B1|g" -e "s|@BACKEND2@|$B2|g" -e "s|@BACKEND3@|$B3|g" "$1" >"$2"
}
render bench/nginx.conf "$TMP/nginx.conf" "${PORT[nginx]}" "${TLSPORT[nginx]}" "${GZIPPORT[nginx]}"
render bench/haproxy.cfg "$TMP/haproxy.cfg" "${PORT[haproxy]}" "${TLSPORT[haproxy]}" "${GZIPPORT[haproxy]}"
nginx -t -q -p "$TMP/" -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" || die "bad nginx config"
haproxy -c -q -f "$TMP/haproxy.cfg" || die "bad haproxy config"

start_proxy() { # start_proxy NAME
  local port=${PORT[$1]} log="$TMP/$1.log"
  case "$1" in
    wharf|wharf-base)
      "$TMP/$1" --listen "127.0.0.1:$port" --admin-listen '' --max-conns "$MAXCONNS" \
        --upstream "127.0.0.1:$B1" --upstream "127.0.0.1:$B2" --upstream "127.0.0.1:$B3" \
        --log-level error --shutdown-timeout 1s >>"$log" 2>&1 &
      ;;
    wharf-tls)
      # Session tickets off, as nginx's and HAProxy's session caches and
      # tickets are: every new connection is a full handshake everywhere.
      "$TMP/wharf" --listen "127.0.0.1:$port" --admin-listen '' --max-conns "$MAXCONNS" \
        --upstream "127.0.0.1:$B1" --upstream "127.0.0.1:$B2" --upstream "127.0.0.1:$B3" \
        --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" --tls-session-tickets=false \
        --log-level error --shutdown-timeout 1s >>"$log" 2>&1 &
      ;;
    wharf-gzip)
      # What nginx's gzip server block and HAProxy's bench-gzip frontend do.
      "$TMP/wharf" --listen "127.0.0.1:$port" --admin-listen '' --max-conns "$MAXCONNS" \
        --upstream "127.0.0.1:$B1" --upstream "127.0.0.1:$B2" --upstream "127.0.0.1:$B3" \
        --gzip --gzip-level 1 --gzip-types application/json \
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
[ -n "${WHARF_BASE_BIN:-}" ] && PROXIES=(wharf wharf-base nginx haproxy)
start_all() { local p; for p in "${PROXIES[@]}"; do start_proxy "$p"; done; }
stop_all() { local p; for p in "${PROXIES[@]}"; do stop_proxy "$p"; done; }
proxy_args() {
  local p
  for p in "${PROXIES[@]}"; do printf -- '--proxy\n%s=127.0.0.1:%s,pid=%s\n' "$p" "${PORT[$p]}" "${PID[$p]}"; done
}
tls_proxy_args() {
  printf -- '--tls-proxy\nwharf=127.0.0.1:%s,pid=%s\n' "${TLSPORT[wharf]}" "${PID[wharf-tls]}"
  local p
  for p in nginx haproxy; do printf -- '--tls-proxy\n%s=127.0.0.1:%s,pid=%s\n' "$p" "${TLSPORT[$p]}" "${PID[$p]}"; done
}
gzip_proxy_args() {
  printf -- '--gzip-proxy\nwharf=127.0.0.1:%s,pid=%s\n' "${GZIPPORT[wharf]}" "${PID[wharf-gzip]}"
  local p
  for p in nginx haproxy; do printf -- '--gzip-proxy\n%s=127.0.0.1:%s,pid=%s\n' "$p" "${GZIPPORT[$p]}" "${PID[$p]}"; done
}

common=(--wrk "$(command -v wrk)" --wharf-bin "$TMP/wharf" --out bench/results)
if [ -n "${WHARF_BIN:-}" ]; then
  common+=(--wharf-rev "WHARF_BIN=$WHARF_BIN")
else
  rev=$(git describe --always --dirty 2>/dev/null || true)
  [ -n "$rev" ] && common+=(--wharf-rev "$rev")
fi
[ -n "${WHARF_BASE_BIN:-}" ] && common+=(--wharf-base-bin "$TMP/wharf-base" --wharf-base-rev "${WHARF_BASE_REV:-$WHARF_BASE_BIN}")
[ $QUICK = 1 ] && common+=(--quick)
[ -n "$HOLD" ] && common+=(--hold "$HOLD")
echo "run.sh: backends on 127.0.0.1:$B1,$B2,$B3; wharf :${PORT[wharf]} (TLS :${TLSPORT[wharf]}, gzip :${GZIPPORT[wharf]}),${WHARF_BASE_BIN:+ wharf-base :${PORT[wharf-base]},} nginx :${PORT[nginx]} (TLS :${TLSPORT[nginx]}, gzip :${GZIPPORT[nginx]}), haproxy :${PORT[haproxy]} (TLS :${TLSPORT[haproxy]}, gzip :${GZIPPORT[haproxy]})" >&2

if [ $THROUGHPUT = 1 ]; then
  start_all
  args=("${common[@]}" --conc "$CONC" --tls-conc "$TLSCONC" --handshake-conc "$HSCONC" --gzip-conc "$GZIPCONC" --h2-conc "$H2CONC" --backend-pids "$(IFS=,; echo "${BPIDS[*]}")")
  [ -n "$H2CONC" ] && args+=(--h2load "$(command -v h2load)")
  [ -n "$RUNS" ] && args+=(--runs "$RUNS")
  [ -n "$DURATION" ] && args+=(--duration "$DURATION")
  mapfile -t pargs < <(proxy_args)
  if [ -n "$TLSCONC$HSCONC$H2CONC" ]; then
    start_proxy wharf-tls
    mapfile -t -O "${#pargs[@]}" pargs < <(tls_proxy_args)
  fi
  if [ -n "$GZIPCONC" ]; then
    start_proxy wharf-gzip
    mapfile -t -O "${#pargs[@]}" pargs < <(gzip_proxy_args)
  fi
  "$TMP/benchrun" "${args[@]}" "${pargs[@]}"
  [ -n "${PID[wharf-tls]:-}" ] && stop_proxy wharf-tls
  [ -n "${PID[wharf-gzip]:-}" ] && stop_proxy wharf-gzip
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

echo >&2
echo "run.sh: done in $(( $(date +%s) - START )) s" >&2
