# Everyday commands. `make test` is what CI runs.
GO ?= go

.PHONY: bench-hostile test lint demo demo-down images bench build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/wharf ./cmd/wharf
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/webtest ./cmd/webtest

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Unit, integration (real Docker Engine) and fuzz-corpus tests, with the race
# detector. Docker tests skip when no engine is reachable unless
# WHARF_REQUIRE_DOCKER=1.
test: lint
	$(GO) test -race -count=1 -timeout 20m ./...
	# The data path as it ships, without the race detector: no allocation
	# per request, 1 GiB bodies in bounded memory (HTTP/1.1, TLS and HTTP/2),
	# small stacks for slow bodies.
	$(GO) test -count=1 -run 'AllocatesNothing|AllocationsPerRequest|LargeBodies|StacksStaySmall' ./proxy/

demo:
	./compose/demo.sh

demo-down:
	./compose/demo.sh down

# The images wharf:demo and wharf-webtest:demo, without starting anything.
images:
	./compose/demo.sh images

bench:
	./bench/run.sh

# wharf and nginx under hostile clients (bench/hostile.sh; --quick: 2 minutes).
bench-hostile:
	./bench/hostile.sh
