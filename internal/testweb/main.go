// Command testweb is a backend for wharf's container lifecycle tests. Unlike
// webtest it can be slow to start listening and slow to stop, and each
// answer says when the request reached it, so that a test can tell on the
// host's clock (a container shares the host's kernel clock) when the
// balancer sent it the last request.
//
//	testweb [--listen :8080] [--listen-after D] [--on-term exit|drain|ignore] [--drain D]
//
// Any GET answers 200 with
//
//	{"Server":"<hostname>","Received":<unix ns>,"Listening":<unix ns>}
//
// where Received is when the request arrived and Listening is when the port
// was about to open (no connection can succeed before it). --listen-after D keeps the port closed
// (connections refused) for D after the process starts. On SIGTERM or
// SIGINT, --on-term decides: exit stops at once; drain keeps accepting and
// answering for --drain, then exits; ignore carries on (only SIGKILL stops
// it).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("testweb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":8080", "address to serve on")
	after := fs.Duration("listen-after", 0, "keep the port closed this long after start")
	onTerm := fs.String("on-term", "exit", "what SIGTERM does: exit, drain or ignore")
	drain := fs.Duration("drain", time.Second, "with --on-term drain, how long to keep serving")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch *onTerm {
	case "exit", "drain", "ignore":
	default:
		fmt.Fprintf(stderr, "testweb: --on-term %q: want exit, drain or ignore\n", *onTerm)
		return 2
	}
	name, err := os.Hostname()
	if err != nil {
		fmt.Fprintf(stderr, "testweb: %v\n", err)
		return 1
	}

	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)

	start := time.Now()
	select {
	case <-time.After(*after):
	case <-term:
		if *onTerm != "ignore" {
			return 0
		}
	}
	// Read before the port opens: no connection can succeed earlier, so a
	// peer routed before this time was routed too early, however late
	// this process is scheduled after the listen.
	listening := time.Now().UnixNano()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "testweb: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "testweb: %s listening on %s after %s\n", name, ln.Addr(), time.Since(start).Round(time.Millisecond))

	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			received := time.Now().UnixNano()
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(struct {
				Server    string
				Received  int64
				Listening int64
			}{name, received, listening})
		}),
	}
	go srv.Serve(ln)

	for sig := range term {
		switch *onTerm {
		case "ignore":
			fmt.Fprintf(stderr, "testweb: %v ignored\n", sig)
			continue
		case "drain":
			fmt.Fprintf(stderr, "testweb: %v: serving %s more\n", sig, *drain)
			time.Sleep(*drain)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx)
		cancel()
		return 0
	}
	return 0
}
