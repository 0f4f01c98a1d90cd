#!/usr/bin/env bash
# bench/hostile.sh: wharf and nginx side by side under hostile clients, in
# front of the same two webtest backends, all on 127.0.0.1.
#
#   bench/hostile.sh            full run (about 8 minutes)
#   bench/hostile.sh --quick    the same scenarios shortened (about 2 minutes):
#                               a 10 s flood, a 3 s send timeout
#
# Scenarios, each against a freshly started proxy, wharf then nginx:
#   flood    21,000 silent connections against a 20,000 open-file limit while
#            300 keep-alive clients send a request a second each and /healthz
#            is probed once a second (wharf: its admin port; nginx: a location)
#   readers  200 clients request a 4 MiB answer and never read; the backend
#            connections still held are counted after --wait
#   bodies   5,000 connections each send 65,535 bytes of a 65,536-byte body;
#            the proxy's resident memory per connection is read from /proc
#
# Options:
#   --only LIST          scenarios to run, e.g. bodies,readers (default all)
#   --send-timeout D     both proxies' send timeout (default 60s; quick: 3s)
#   --wait D             when the readers' connections are counted
#                        (default 70s; quick: the send timeout + 7s)
#   --flood-duration D   how long the flood is held (default 60s; quick: 10s)
#   --conns N            silent connections of the flood (default 21000)
#   --bodies N           slow-body connections (default 5000)
#
# What it does: installs nginx (nginx-light) from Debian's packages when
# missing; builds wharf, webtest and the bench/cmd/hostile driver into a
# temporary directory; starts two webtest backends, and for each scenario
# each proxy in turn (wharf with --upstream × 2 and its defaults; nginx from
# bench/nginx-hostile.conf), both under a 20,000 open-file limit; appends the
# figures to bench/results/hostile-DATE.jsonl (git-ignored) and prints them
# as Markdown tables. Every process it started is stopped on exit, also on
# Ctrl-C or failure. Needs Linux (/proc), and root or sudo only to install.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
SCRIPT=hostile.sh
. bench/lib.sh

QUICK=0 ONLY="flood,readers,bodies" SEND_TIMEOUT="" WAIT="" FLOOD_DURATION="" CONNS=21000 BODIES=5000
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY=$2; shift ;;
    --send-timeout) SEND_TIMEOUT=$2; shift ;;
    --wait) WAIT=$2; shift ;;
    --flood-duration) FLOOD_DURATION=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --bodies) BODIES=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "hostile.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
secs() { case "$1" in *ms) echo 1 ;; *s) echo "${1%s}" ;; *m) echo $(( ${1%m} * 60 )) ;; *) echo "$1" ;; esac; }
if [ $QUICK = 1 ]; then
  SEND_TIMEOUT=${SEND_TIMEOUT:-3s} FLOOD_DURATION=${FLOOD_DURATION:-10s}
else
  SEND_TIMEOUT=${SEND_TIMEOUT:-60s} FLOOD_DURATION=${FLOOD_DURATION:-60s}
fi
[ -n "$WAIT" ] || { [ $QUICK = 1 ] && WAIT="$(( $(secs "$SEND_TIMEOUT") + 7 ))s" || WAIT=70s; }

[ -r /proc/net/tcp ] || die "needs Linux with /proc"
command -v go >/dev/null || die "Go toolchain not found"
START=$(date +%s)

if ! command -v nginx >/dev/null 2>&1; then
  command -v apt-get >/dev/null || die "nginx missing and no apt-get to install it"
  sudo=()
  [ "$(id -u)" -ne 0 ] && { command -v sudo >/dev/null || die "nginx missing: run as root or install sudo"; sudo=(sudo); }
  echo "hostile.sh: installing nginx from Debian's packages" >&2
  "${sudo[@]}" apt-get update -qq
  pkg=nginx
  apt-cache policy nginx-light 2>/dev/null | grep -q 'Candidate: [0-9]' && pkg=nginx-light
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
  command -v nginx >/dev/null || die "nginx still missing after installing"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wharf-hostile.XXXXXX")
chmod 755 "$TMP" # nginx's worker may run as nobody
PROXY_PID="" BPIDS=()
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  [ -n "$PROXY_PID" ] && stop_pid "$PROXY_PID"
  for pid in "${BPIDS[@]}"; do stop_pid "$pid"; done
  if [ $rc -ne 0 ]; then
    for f in "$TMP"/*.log; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "hostile.sh: building wharf, webtest and the hostile driver" >&2
export CGO_ENABLED=0
go build -o "$TMP/wharf" ./cmd/wharf
go build -o "$TMP/webtest" ./cmd/webtest
go build -o "$TMP/hostile" ./bench/cmd/hostile
go build -o "$TMP/benchrun" ./bench/cmd/benchrun

# The open-file budget of the proxies (wharf inherits it; nginx sets its own).
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 20000 ]; then ulimit -n 20000; else ulimit -n "$hard"; fi

mapfile -t PORTS < <("$TMP/benchrun" --free-ports 4)
B1=${PORTS[0]} B2=${PORTS[1]} PORT=${PORTS[2]} ADMIN=${PORTS[3]}
sed -e "s|@TMP@|$TMP|g" -e "s|@PORT@|$PORT|g" -e "s|@BACKEND1@|$B1|g" -e "s|@BACKEND2@|$B2|g" \
  -e "s|@SEND_TIMEOUT@|$SEND_TIMEOUT|g" \
  -e "s|@USER@|$([ "$(id -u)" -eq 0 ] && echo "user nobody $(id -gn nobody 2>/dev/null || echo nogroup);")|g" \
  bench/nginx-hostile.conf >"$TMP/nginx.conf"
nginx -t -q -p "$TMP/" -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" || die "bad nginx config"

for i in 1 2; do
  port=$B1; [ $i = 2 ] && port=$B2
  "$TMP/webtest" --listen "127.0.0.1:$port" --name "webtest$i" --shutdown-timeout 1s 2>>"$TMP/webtest$i.log" &
  BPIDS+=($!)
  wait_port "webtest$i" $! "$port"
done

# start_proxy NAME: a fresh proxy, so that no scenario inherits another's state.
start_proxy() {
  case "$1" in
    wharf)
      "$TMP/wharf" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
        --upstream "127.0.0.1:$B1" --upstream "127.0.0.1:$B2" \
        --send-timeout "$SEND_TIMEOUT" --log-level warn --shutdown-timeout 1s >>"$TMP/wharf.log" 2>&1 &
      ;;
    nginx) nginx -p "$TMP/" -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" >>"$TMP/nginx.log" 2>&1 & ;;
  esac
  PROXY_PID=$!
  wait_port "$1" "$PROXY_PID" "$PORT"
}
stop_proxy() { stop_pid "$PROXY_PID"; PROXY_PID=""; sleep 1; }
target() { # target NAME: the driver's flags for proxy NAME
  printf -- '--name\n%s\n--addr\n127.0.0.1:%s\n--pid\n%s\n--backends\n127.0.0.1:%s,127.0.0.1:%s\n' "$1" "$PORT" "$PROXY_PID" "$B1" "$B2"
  case "$1" in
    wharf) printf -- '--probe\nhttp://127.0.0.1:%s/healthz\n--metrics\nhttp://127.0.0.1:%s/metrics\n' "$ADMIN" "$ADMIN" ;;
    nginx) printf -- '--probe\nhttp://127.0.0.1:%s/healthz\n--error-log\n%s\n' "$PORT" "$TMP/nginx-error.log" ;;
  esac
}

mkdir -p bench/results
OUT=bench/results/hostile-$(date -u +%Y%m%d-%H%M%S).jsonl
mode=full; [ $QUICK = 1 ] && mode=quick
echo "hostile.sh: $mode run; backends 127.0.0.1:$B1,$B2; proxy on :$PORT; send timeout $SEND_TIMEOUT; figures to $OUT" >&2
for scen in flood readers bodies; do
  case ",$ONLY," in *",$scen,"*) ;; *) continue ;; esac
  for p in wharf nginx; do
    start_proxy "$p"
    mapfile -t args < <(target "$p")
    case "$scen" in
      flood) "$TMP/hostile" flood "${args[@]}" --conns "$CONNS" --duration "$FLOOD_DURATION" --out "$OUT" ;;
      readers) "$TMP/hostile" readers "${args[@]}" --wait "$WAIT" --send-timeout "$SEND_TIMEOUT" --out "$OUT" ;;
      bodies) "$TMP/hostile" bodies "${args[@]}" --conns "$BODIES" --out "$OUT" ;;
    esac
    stop_proxy
  done
done

echo
{
  echo "## Hostile clients: wharf and nginx ($mode run, $(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo "$(nproc) CPUs, $(uname -r); $(nginx -v 2>&1); $("$TMP/wharf" version 2>/dev/null | head -n 1)"
  echo
  "$TMP/hostile" report --in "$OUT"
} | tee "${OUT%.jsonl}.md"
echo "hostile.sh: done in $(( $(date +%s) - START )) s" >&2
