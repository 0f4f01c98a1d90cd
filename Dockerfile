# wharf as a FROM scratch image. From the repository root:
#
#   docker build -t wharf .
#
# Without registry access (no golang image to pull), build the binary on the
# host and let BuildKit copy it instead of compiling in the golang stage:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags '-s -w -X main.version=v0.1.0' -o bin/wharf ./cmd/wharf
#   DOCKER_BUILDKIT=1 docker build --build-arg SRC=prebuilt -t wharf .
#
# BuildKit builds only the stages the final one needs; the legacy builder
# builds every stage, so it always needs the golang image.
#
# Run it on the network of the containers to balance, with the Docker socket:
#
#   docker run -d --name wharf --network webtest -p 10000:10000 -p 127.0.0.1:8080:8080 \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro wharf --network webtest
#
# The admin port is published to this machine only; to reach it from
# elsewhere, publish it on every interface and set --admin-auth.
#
# With automatic HTTPS (--acme-email), keep the account and certificates
# across restarts: mount a directory owned by wharf's user (65532) at the
# default --acme-storage, e.g. -v /srv/wharf/acme:/var/lib/wharf/acme after
# chown 65532:65532 /srv/wharf/acme. It is not declared as a VOLUME: a
# named volume would be created owned by root, where wharf cannot write.
ARG SRC=build

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version "wharf version" prints, e.g. --build-arg VERSION=v0.1.0.
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /wharf ./cmd/wharf

# go.mod is copied only so that this stage also builds, empty, when
# bin/wharf does not exist (legacy builder with SRC=build).
FROM scratch AS prebuilt
COPY go.mod bin/wharf* /

FROM ${SRC} AS src

FROM scratch
COPY --from=src /wharf /wharf
# Inside the container the admin server listens on every interface, so that
# the exposed port 8080 is reachable when published; the healthcheck reads
# the same variable.
ENV WHARF_ADMIN_LISTEN=:8080
EXPOSE 10000 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["/wharf", "healthcheck"]
STOPSIGNAL SIGTERM
# wharf needs no privilege: it runs as an unprivileged user and reaches the
# Docker socket through the socket's group, given at run time with
# --group-add "$(stat -c %g /var/run/docker.sock)" (compose: group_add).
USER 65532:65532
ENTRYPOINT ["/wharf"]
