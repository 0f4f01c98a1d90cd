// Command hostile drives the hostile-client scenarios of bench/hostile.sh
// against one proxy at a time (wharf or nginx, in front of the same webtest
// backends on 127.0.0.1) and appends the figures of each run to a JSON
// lines file; "hostile report" prints them side by side.
//
//	hostile flood   a silent-connection flood beside keep-alive clients and /healthz probes
//	hostile readers clients that request a large answer and never read it
//	hostile bodies  connections that send all but the last byte of a request body
//	hostile silent  (used by flood) open silent connections and hold them until stdin closes
//	hostile report  print the runs of a results file as Markdown tables
//
// Every figure is measured from outside the proxy: answers the clients got,
// sockets in /proc/net/tcp, and the proxy's resident memory from /proc.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// target is the proxy under test.
type target struct {
	Name     string   // "wharf" or "nginx"
	Addr     string   // its client port, host:port
	PID      int      // its main process; its descendants are counted too
	Probe    string   // the URL of its health check
	Metrics  string   // wharf's /metrics URL, "" for nginx
	ErrorLog string   // nginx's error log, "" for wharf
	Backends []string // the webtest backends, host:port
}

func (t *target) flags(fs *flag.FlagSet) {
	fs.StringVar(&t.Name, "name", "", "name of the proxy in the report")
	fs.StringVar(&t.Addr, "addr", "", "the proxy's client address, host:port")
	fs.IntVar(&t.PID, "pid", 0, "the proxy's main process (its children are counted too)")
	fs.StringVar(&t.Probe, "probe", "", "health check URL, e.g. http://127.0.0.1:8080/healthz")
	fs.StringVar(&t.Metrics, "metrics", "", "wharf's /metrics URL, to read peer failures and retry buffers")
	fs.StringVar(&t.ErrorLog, "error-log", "", "nginx's error log, to count peers marked down")
	fs.Func("backends", "comma-separated webtest backends, host:port", func(s string) error {
		t.Backends = strings.Split(s, ",")
		return nil
	})
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hostile flood|readers|bodies|silent|report [flags] (-h for each)")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "flood":
		err = floodMain(args)
	case "readers":
		err = readersMain(args)
	case "bodies":
		err = bodiesMain(args)
	case "silent":
		err = silentMain(args)
	case "report":
		err = reportMain(args)
	default:
		err = fmt.Errorf("unknown command %q: want flood, readers, bodies, silent or report", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

// parse parses args into fs and checks the target's required flags.
func parse(fs *flag.FlagSet, args []string, t *target) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if t.Name == "" || t.Addr == "" || t.PID == 0 {
		return errors.New("--name, --addr and --pid are required")
	}
	return nil
}

// record is one run's figures, as appended to the results file.
type record struct {
	Scenario string         `json:"scenario"`
	Proxy    string         `json:"proxy"`
	Time     time.Time      `json:"time"`
	Settings map[string]any `json:"settings"`
	Figures  map[string]any `json:"figures"`
}

// appendRecord adds r to the JSON lines file path and prints it.
func appendRecord(path string, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s: %s\n", r.Scenario, r.Proxy, b)
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(b, '\n'))
	return err
}

// backendPorts returns the ports of addrs.
func backendPorts(addrs []string) (map[int]bool, error) {
	ports := map[int]bool{}
	for _, a := range addrs {
		i := strings.LastIndexByte(a, ':')
		p, err := strconv.Atoi(a[i+1:])
		if i < 0 || err != nil {
			return nil, fmt.Errorf("backend %q: want host:port", a)
		}
		ports[p] = true
	}
	return ports, nil
}
