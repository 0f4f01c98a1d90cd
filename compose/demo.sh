#!/usr/bin/env bash
# The wharf demo: three webtest backends on the network "webtest" behind
# wharf on port 10000, as in compose/docker-compose.yml.
#
#   compose/demo.sh        build the binaries and images, start, wait, show what to try
#   compose/demo.sh down   stop and remove the demo (containers and network)
#   compose/demo.sh images only build the images wharf:demo and wharf-webtest:demo
#
# Needs Go, Docker and docker-compose (1.29) or docker compose (v2); no
# registry: the binaries are compiled here and copied into FROM scratch
# images with BuildKit (--build-arg SRC=prebuilt).
set -euo pipefail

cd "$(dirname "$0")/.."
COMPOSE_YML=compose/docker-compose.yml
WAIT_SECONDS=${WAIT_SECONDS:-60}

die() { echo "demo: $*" >&2; exit 1; }

compose() {
	if docker compose version >/dev/null 2>&1; then
		docker compose -f "$COMPOSE_YML" "$@"
	elif command -v docker-compose >/dev/null 2>&1; then
		docker-compose -f "$COMPOSE_YML" "$@"
	else
		die "neither 'docker compose' nor docker-compose found"
	fi
}

# buildkit_docker prints a docker CLI whose "docker build" can use BuildKit:
# one with the buildx plugin, or a client older than 23 with BuildKit built
# in (Debian's /usr/bin/docker 20.10).
buildkit_docker() {
	local d v
	for d in docker /usr/bin/docker; do
		command -v "$d" >/dev/null 2>&1 || continue
		if "$d" buildx version >/dev/null 2>&1; then
			echo "$d"
			return 0
		fi
		v=$("$d" version --format '{{.Client.Version}}' 2>/dev/null || true)
		if [[ $v =~ ^([0-9]+)\. ]] && ((BASH_REMATCH[1] < 23)); then
			echo "$d"
			return 0
		fi
	done
	return 1
}

down() {
	# Containers started by hand from the hints below go first: they hold
	# the network.
	local extra
	extra=$(docker ps -aq --filter label=wharf.demo=true)
	if [[ -n $extra ]]; then
		# shellcheck disable=SC2086
		docker rm -f $extra >/dev/null
	fi
	compose down --remove-orphans
}

# images compiles the binaries and builds the images wharf:demo and
# wharf-webtest:demo, which the demo and the README's examples run.
images() {
	command -v go >/dev/null 2>&1 || die "go not found: it compiles the binaries"
	docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info)"
	local d
	d=$(buildkit_docker) || die "no docker CLI with BuildKit (buildx plugin, or a client older than 23)"

	echo "==> compiling bin/wharf and bin/webtest"
	mkdir -p bin
	local version
	version=$(git describe --tags --always --dirty 2>/dev/null || true)
	for cmd in wharf webtest; do
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" -o "bin/$cmd" "./cmd/$cmd"
	done

	echo "==> building images wharf:demo and wharf-webtest:demo with $d"
	DOCKER_BUILDKIT=1 "$d" build -q --build-arg SRC=prebuilt -f cmd/webtest/Dockerfile -t wharf-webtest:demo . >/dev/null
	DOCKER_BUILDKIT=1 "$d" build -q --build-arg SRC=prebuilt -f Dockerfile -t wharf:demo . >/dev/null
	docker images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E '^(wharf|wharf-webtest):demo ' | sed 's/^/    /' || true
}

up() {
	images

	echo "==> starting"
	DOCKER_GID=$(stat -c %g /var/run/docker.sock 2>/dev/null || echo 0)
	export DOCKER_GID
	compose up -d --no-build

	echo "==> waiting (at most ${WAIT_SECONDS}s) for http://localhost:10000/webtest?action=get_uuid"
	local deadline=$((SECONDS + WAIT_SECONDS)) body
	until body=$(curl -fsS --max-time 2 'http://localhost:10000/webtest?action=get_uuid' 2>/dev/null); do
		if ((SECONDS >= deadline)); then
			compose ps
			compose logs --tail 30 wharf
			die "wharf did not answer on port 10000 within ${WAIT_SECONDS}s"
		fi
		sleep 0.5
	done
	echo "$body"
	cat <<'EOF'

The demo runs. Try:

  # one answer; "Server" names the backend that served it
  curl 'localhost:10000/webtest?action=get_uuid'

  # weights 5:1:1, so 14 requests give 10, 2 and 2 (nginx's smooth order)
  for i in $(seq 14); do curl -s 'localhost:10000/webtest?action=get_uuid' | grep -o '"Server":"[^"]*"'; done | sort | uniq -c

  # dashboard, peers and metrics
  open http://localhost:8080/   (or: curl localhost:8080/api/services; curl localhost:8080/metrics)

  # stop a backend: it is drained, clients see no error; start it again
  docker stop webtest002; docker start webtest002

  # a fourth backend joins by its labels alone
  docker run -d --name webtest004 --hostname webtest004 --network webtest \
    --label lb.enable=true --label lb.port=6969 --label wharf.demo=true wharf-webtest:demo

  # what wharf saw
  docker logs -f wharf

  # tear everything down
  compose/demo.sh down
EOF
}

case ${1:-up} in
up) up ;;
images) images ;;
down) down ;;
*) die "usage: $0 [up|down|images]" ;;
esac
