package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

// The figures each scenario's table shows, in order, with what they mean.
var reportRows = map[string][][2]string{
	"flood": {
		{"silent_opened", "silent connections opened"},
		{"clients_served", "client requests answered 200 during the flood"},
		{"client_requests", "client requests sent during the flood"},
		{"during_flood", "answers during the flood, by kind"},
		{"probes_answered", "/healthz probes answered"},
		{"probes_sent", "/healthz probes sent"},
		{"peer_failures", "peer failures counted (wharf)"},
		{"peers_down_max", "peers down at most (wharf /metrics)"},
		{"peers_marked_down", "peers marked down (nginx error log)"},
		{"worker_connections_not_enough", "\"worker_connections are not enough\" (nginx)"},
		{"shortage_total", "requests answered 503 for want of descriptors (wharf)"},
		{"reclaimed_total", "idle connections closed to make room (wharf)"},
	},
	"readers": {
		{"backend_conns_stalled_max", "backend connections with an answer stuck, at most"},
		{"backend_conns_stalled_at_end", "backend connections with an answer stuck, at the end"},
		{"backend_conns_open_at_end", "backend connections open at the end (idle ones included)"},
		{"backend_stalled_freed_after_ms", "all stuck backend connections let go after (ms)"},
		{"client_conns_open_at_end", "client connections still open at the end"},
	},
	"bodies": {
		{"conns_held", "connections held"},
		{"rss_per_conn_bytes", "RSS per connection (bytes)"},
		{"pss_per_conn_bytes", "PSS per connection (bytes)"},
		{"rss_before_bytes", "RSS before (bytes)"},
		{"rss_after_bytes", "RSS with the connections held (bytes)"},
		{"wharf_retry_buffer_bytes", "wharf_retry_buffer_bytes"},
		{"wharf_retry_buffer_exhausted_total", "wharf_retry_buffer_exhausted_total"},
		{"go_memstats_heap_inuse_bytes", "Go heap in use (wharf)"},
		{"go_memstats_stack_inuse_bytes", "Go stacks (wharf)"},
		{"go_memstats_next_gc_bytes", "Go heap goal (wharf)"},
		{"last_byte_answer", "answer once the last byte is sent"},
	},
}

// reportMain prints the last run of each proxy in each scenario of a
// results file as Markdown tables, the proxies side by side.
func reportMain(args []string) error {
	fs := flag.NewFlagSet("hostile report", flag.ContinueOnError)
	in := fs.String("in", "", "JSON lines file written by the scenarios")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	last := map[string]map[string]record{} // scenario → proxy → run
	var proxies []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s: %w", *in, err)
		}
		if last[r.Scenario] == nil {
			last[r.Scenario] = map[string]record{}
		}
		last[r.Scenario][r.Proxy] = r
		if !slices.Contains(proxies, r.Proxy) {
			proxies = append(proxies, r.Proxy)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, scen := range []string{"flood", "readers", "bodies"} {
		runs := last[scen]
		if len(runs) == 0 {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "### %s\n\n", scen)
		for _, p := range proxies {
			if r, ok := runs[p]; ok {
				s, _ := json.Marshal(r.Settings)
				fmt.Fprintf(&b, "%s: %s\n", p, s)
			}
		}
		b.WriteString("\n| figure |")
		for _, p := range proxies {
			fmt.Fprintf(&b, " %s |", p)
		}
		b.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(proxies)) + "\n")
		for _, row := range reportRows[scen] {
			fmt.Fprintf(&b, "| %s |", row[1])
			for _, p := range proxies {
				v, ok := runs[p].Figures[row[0]]
				switch {
				case !ok:
					b.WriteString(" — |")
				case v == nil:
					b.WriteString(" never |")
				default:
					s, _ := json.Marshal(v)
					fmt.Fprintf(&b, " %s |", strings.ReplaceAll(string(s), "|", "/"))
				}
			}
			b.WriteString("\n")
		}
		fmt.Println(b.String())
	}
	return nil
}
