#!/usr/bin/env bash
# record.sh re-records the Docker Engine fixtures of this directory from a real engine.
#
#   testdata/engine/record.sh        (from the repository root; needs docker, go, python3)
#
# It is not run by the tests or by CI. It builds a tiny static server, imports it as three
# images (no EXPOSE; EXPOSE 6969; EXPOSE 6969 + HEALTHCHECK), creates two uniquely named
# networks and one container per state the discovery tests cover, and writes:
#
#   network-main.json, network-other.json  GET /networks/ID (the network under test, another)
#   inspect-<case>.json                    GET /containers/ID/json, the JSON the SDK decodes
#   events-<scenario>.jsonl                docker events --format '{{json .}}', one event a line
#
# Everything it creates carries the label wharf.test=record and is removed on exit, also on
# failure. Container and network names carry a random suffix, so a recording never clashes
# with containers of the demo; the tests read the names from the fixtures.
set -euo pipefail

out=$(cd "$(dirname "$0")" && pwd)
sfx=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
run=wharfrec-$sfx
net=$run
other=$run-other
work=$(mktemp -d)

cleanup() {
	set +e
	docker ps -aq --filter label=wharf.test=record | xargs -r docker rm -f >/dev/null
	docker network ls -q --filter label=wharf.test=record | xargs -r docker network rm >/dev/null
	docker images -q --filter label=wharf.test=record | sort -u | xargs -r docker rmi -f >/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

log() { printf '== %s\n' "$*" >&2; }

# --- the server --------------------------------------------------------------------------
mkdir -p "$work/src" "$work/root/tmp" "$work/root/etc"
chmod 1777 "$work/root/tmp"
cat >"$work/src/main.go" <<'EOF'
// srv serves HTTP on the ports of $PORTS (default 6969) until SIGTERM.
//
//	srv -check          exit 0 if healthy: $HC is not "fail", /tmp/unhealthy does not
//	                    exist and the first port accepts connections
//	srv -mark|-unmark   create or remove /tmp/unhealthy
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const mark = "/tmp/unhealthy"

func main() {
	ports := strings.Fields(strings.ReplaceAll(os.Getenv("PORTS"), ",", " "))
	if len(ports) == 0 {
		ports = []string{"6969"}
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "-check":
			if os.Getenv("HC") == "fail" {
				os.Exit(1)
			}
			if _, err := os.Stat(mark); err == nil {
				os.Exit(1)
			}
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+ports[0], time.Second)
			if err != nil {
				os.Exit(1)
			}
			c.Close()
			os.Exit(0)
		case "-mark":
			os.WriteFile(mark, nil, 0o644)
			os.Exit(0)
		case "-unmark":
			os.Remove(mark)
			os.Exit(0)
		}
	}
	host, _ := os.Hostname()
	for _, p := range ports {
		ln, err := net.Listen("tcp", ":"+p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s\n", host, p)
		}))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	time.Sleep(100 * time.Millisecond)
}
EOF
(cd "$work/src" && printf 'module srv\n\ngo 1.22\n' >go.mod &&
	CGO_ENABLED=0 GOFLAGS= go build -trimpath -ldflags='-s -w' -o "$work/root/srv" .)
tar -C "$work/root" -cf "$work/rootfs.tar" .

log "images"
lbl=(--change 'LABEL wharf.test=record' --change 'CMD ["/srv"]')
docker import "${lbl[@]}" "$work/rootfs.tar" "$run-plain" >/dev/null
docker import "${lbl[@]}" --change 'EXPOSE 6969/tcp' "$work/rootfs.tar" "$run-web" >/dev/null
docker import "${lbl[@]}" --change 'EXPOSE 6969/tcp' \
	--change 'HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["/srv", "-check"]' \
	"$work/rootfs.tar" "$run-health" >/dev/null

docker network create --label wharf.test=record "$net" >/dev/null
docker network create --label wharf.test=record "$other" >/dev/null

# Three free host ports for the published-port cases.
read -r hp1 hp2 hp3 < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(3)]
for s in ss: s.bind(("", 0))
print(*[s.getsockname()[1] for s in ss])')

# c NAME IMAGE [docker run options...]: run a container of this recording.
c() {
	local name=$1 image=$2
	shift 2
	docker run -d --name "$run-$name" --label wharf.test=record "$@" "$run-$image" >/dev/null
}

log "containers"
c running web --network "$net" -p "$hp1:6969" -l lb.enable=true -l lb.weight=5
c two-ports web --network "$net" --expose 7070 -e PORTS=6969,7070 -l lb.enable=true
c host-port web --network "$net" -p "$hp2:6969" -l lb.enable=true -l "lb.port=$hp2"
c no-expose plain --network "$net" -l lb.enable=true -l lb.port=6969
c health-starting health --network "$net" --health-interval 1h -l lb.enable=true
c health-healthy health --network "$net" -l lb.enable=true
c health-unhealthy health --network "$net" -e HC=fail -l lb.enable=true
c health-none health --network "$net" --no-healthcheck -l lb.enable=true
c exited web --network "$net" -l lb.enable=true
c paused web --network "$net" -l lb.enable=true
c unlabelled web --network "$net"
c disabled web --network "$net" -l lb.enable=false
c other-network web --network "$other" -l lb.enable=true
c two-networks web --network "$other" -l lb.enable=true
docker network connect "$net" "$run-two-networks"
c bad-labels web --network "$net" -l lb.enable=true -l lb.weight=abc -l lb.port=99999 \
	-l lb.fail_timeout=soon
c all-labels web --network "$net" -l lb.enable=true -l lb.port=6969 -l lb.weight=3 \
	-l lb.backup=true -l lb.max_fails=3 -l lb.fail_timeout=30s -l lb.service=api \
	-l 'lb.host=API.example.com:10000, *.api.example.com' -l lb.path=/api \
	-l lb.path.strip=true -l lb.policy=least_conn -l lb.health.path=/healthz \
	-l lb.health.interval=10s -l lb.health.timeout=3s -l lb.colour=blue
c other-prefix web --network "$net" -l edge.enable=true -l edge.weight=7 -l lb.weight=abc
docker create --name "$run-created" --label wharf.test=record --network "$net" \
	-l lb.enable=true "$run-web" >/dev/null

docker stop "$run-exited" >/dev/null
docker pause "$run-paused" >/dev/null
log "waiting for health checks"
for i in $(seq 50); do
	h=$(docker inspect -f '{{.State.Health.Status}}' "$run-health-healthy")
	u=$(docker inspect -f '{{.State.Health.Status}}' "$run-health-unhealthy")
	[ "$h/$u" = healthy/unhealthy ] && break
	sleep 0.2
done

inspect() { # inspect NAME FILE
	docker inspect "$1" | python3 -c '
import json, sys
print(json.dumps(json.load(sys.stdin)[0], indent=2))' >"$out/$2"
}

log "inspect"
docker network inspect "$net" | python3 -c '
import json, sys
print(json.dumps(json.load(sys.stdin)[0], indent=2))' >"$out/network-main.json"
docker network inspect "$other" | python3 -c '
import json, sys
print(json.dumps(json.load(sys.stdin)[0], indent=2))' >"$out/network-other.json"
for name in running two-ports host-port no-expose health-starting health-healthy \
	health-unhealthy health-none exited paused unlabelled disabled other-network \
	two-networks bad-labels all-labels other-prefix created; do
	inspect "$run-$name" "inspect-$name.json"
done

# --- events ------------------------------------------------------------------------------
# scenario FILE CONTAINER COMMAND...: run COMMAND and keep the events of the container
# (container events by ID, network events by their "container" attribute).
scenario() {
	local file=$1 name=$2
	shift 2
	local since id
	since=$(date +%s.%N)
	"$@" >/dev/null
	sleep 1
	if ! id=$(docker inspect -f '{{.Id}}' "$name" 2>/dev/null); then
		id=$(cat "$work/id-$name")
	fi
	[[ $id =~ ^[0-9a-f]{64}$ ]] || { echo "no ID for $name: $id" >&2; exit 1; }
	docker events --since "$since" --until "$(date +%s.%N)" --format '{{json .}}' |
		grep -F "$id" >"$out/$file" || true
	log "$file: $(wc -l <"$out/$file") events"
}

log "events"
ev=$run-ev
scenario events-start.jsonl "$ev" docker run -d --name "$ev" --label wharf.test=record \
	--network "$net" -p "$hp3:6969" -l lb.enable=true -l lb.weight=2 "$run-web"
docker inspect -f '{{.Id}}' "$ev" >"$work/id-$ev"
scenario events-network.jsonl "$ev" sh -c "docker network disconnect $net $ev &&
	docker network connect $net $ev"
scenario events-pause.jsonl "$ev" sh -c "docker pause $ev && docker unpause $ev"
scenario events-stop.jsonl "$ev" docker stop "$ev"
scenario events-restart.jsonl "$ev" sh -c "docker start $ev && sleep 0.5 && docker restart $ev"
scenario events-kill.jsonl "$ev" docker kill "$ev"
scenario events-rm.jsonl "$ev" sh -c "docker start $ev && sleep 0.5 && docker rm -f $ev"

hev=$run-hev
scenario events-health.jsonl "$hev" sh -c "
	docker run -d --name $hev --label wharf.test=record --network $net -l lb.enable=true \
		$run-health &&
	until [ \"\$(docker inspect -f '{{.State.Health.Status}}' $hev)\" = healthy ]; do sleep 0.2; done &&
	docker exec $hev /srv -mark &&
	until [ \"\$(docker inspect -f '{{.State.Health.Status}}' $hev)\" = unhealthy ]; do sleep 0.2; done &&
	docker exec $hev /srv -unmark &&
	until [ \"\$(docker inspect -f '{{.State.Health.Status}}' $hev)\" = healthy ]; do sleep 0.2; done &&
	docker stop $hev"

log "done: $out"
