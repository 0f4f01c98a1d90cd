// Command webtest is the demo backend of wharf: the get_uuid API of the
// hand-built nginx set-up wharf replaces, rewritten in Go.
//
//	GET|POST /webtest?action=get_uuid
//	  200 {"IsSuccess":true,"Data":"<uuid4>","RequestTime":"2006-01-02 15:04:05.000","ResponseTime":"…","Server":"<name>"}
//	GET|POST /webtest?action=<anything else or missing>
//	  200 {"IsSuccess":false,"Message":"action not found","Server":"<name>"}
//	OPTIONS /webtest
//	  200, no body
//
// Keys come in that order. The action may also be sent as a form field in a
// POST body. Every /webtest answer carries the original headers:
// Access-Control-Allow-Origin: *, Access-Control-Allow-Headers: Content-Type,
// Access-Control-Allow-Methods: POST, GET, OPTIONS and
// Content-Type: application/json. Server names the backend that answered
// (--name, by default the hostname); unlike the original it is also present
// on failures, so every JSON answer shows where it came from.
//
// Additions for testing a balancer:
//
//	/webtest?...&delay=200ms  hold the answer back (0s to 30s; a bad value
//	                          is a 400 with a JSON failure body)
//	GET /healthz              200 "ok", or 503 "failing" while switched off
//	POST /healthz?fail=1      make /healthz answer 503 from now on
//	POST /healthz?fail=0      make it answer 200 again
//
// With --record FILE (off by default), webtest also notes which requests
// reached it, for tests that must prove a request was not sent twice:
//
//	/webtest?...&id=ID        ID is appended to FILE as one line when the
//	                          request arrives, before it is answered
//	GET /received             the recorded ids, one per line, oldest first
//
// FILE survives a SIGKILL and a restart of the container (it lives in the
// container's writable layer), so the ids a killed server had received can
// be read after it is started again.
//
// On SIGTERM or SIGINT webtest keeps serving for --drain-delay (the time a
// balancer needs to stop sending it requests: wharf stops at the kill event,
// within milliseconds), then stops accepting connections, lets requests in
// flight finish (at most --shutdown-timeout) and exits 0, or 1 if it had to
// cut requests short. Without the delay, a request that a client sent on a
// keep-alive connection just as the shutdown began can be dropped by the
// server unanswered, which the client cannot tell from a crash.
//
// "webtest healthcheck [--addr 127.0.0.1:6969]" exits 0 when /healthz at
// addr answers 200 and 1 otherwise, for a Dockerfile HEALTHCHECK in an image
// without a shell.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code. The server
// shuts down gracefully when ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:], stdout, stderr)
	}

	fs := flag.NewFlagSet("webtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":6969", "address to serve on")
	name := fs.String("name", "", "value of the Server field (default: the hostname)")
	shutdownTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "how long in-flight requests may finish after SIGTERM")
	drainDelay := fs.Duration("drain-delay", 500*time.Millisecond, "how long to keep serving after SIGTERM before shutting down")
	record := fs.String("record", "", "append the id parameter of each /webtest request to this file and list them at GET /received (for tests)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: webtest [flags]\n       webtest healthcheck [--addr HOST:PORT]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "webtest: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if *name == "" {
		h, err := os.Hostname()
		if err != nil {
			log.Error("hostname", "err", err)
			return 1
		}
		*name = h
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	srv := NewServer(*name)
	if *record != "" {
		if err := srv.Record(*record); err != nil {
			ln.Close()
			log.Error("record", "err", err)
			return 1
		}
		log = log.With("record", *record)
	}
	log.Info("serving", "addr", ln.Addr().String(), "name", *name)
	if err := serve(ctx, ln, srv, *drainDelay, *shutdownTimeout); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// serve serves h on ln until ctx is done and drain has passed, then stops
// accepting and waits at most timeout for requests in flight. It returns nil
// after a complete graceful shutdown.
func serve(ctx context.Context, ln net.Listener, h http.Handler, drain, timeout time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-time.After(drain):
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("requests still in flight after %s: %w", timeout, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// healthcheck implements "webtest healthcheck".
func healthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("webtest healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:6969", "HOST:PORT of the webtest server to check")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	c := &http.Client{
		Timeout:   *timeout,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	resp, err := c.Get("http://" + *addr + "/healthz")
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "unhealthy: %s\n", resp.Status)
		return 1
	}
	fmt.Fprintln(stdout, "healthy")
	return 0
}
