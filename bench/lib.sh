# bench/lib.sh: shell functions bench/run.sh and bench/hostile.sh share.
# Sourced after `cd` to the repository; SCRIPT names the caller in messages.

die() { echo "$SCRIPT: $*" >&2; exit 1; }

# stop_pid PID: TERM, then KILL after 5 s.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# wait_port NAME PID PORT: until 127.0.0.1:PORT accepts, while PID lives.
wait_port() {
  local i
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || die "$1 exited at start"
    if (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$1 does not listen on 127.0.0.1:$3"
}
