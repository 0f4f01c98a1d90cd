package main

import (
	"bytes"
	"fmt"
	"math"
	"os/exec"
	"sort"
	"strings"
)

// stat is the median and range of one figure over the measured runs.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func newStat(xs []float64) stat {
	if len(xs) == 0 {
		return stat{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{Median: med, Min: s[0], Max: s[len(s)-1]}
}

// summary is one proxy at one concurrency over its measured runs.
type summary struct {
	Proxy      string `json:"proxy"`
	Load       string `json:"load"`
	Conc       int    `json:"concurrency"`
	Runs       int    `json:"runs"`
	Repeated   int    `json:"repeated_runs"` // disturbed by other load, discarded and run again
	ReqPerSec  stat   `json:"req_per_sec"`
	P50ms      stat   `json:"p50_ms"`
	P99ms      stat   `json:"p99_ms"`
	Errors     int64  `json:"errors"` // summed over the runs
	Requests   int64  `json:"requests"`
	ProxyUS    stat   `json:"proxy_cpu_us_per_request"`
	BackendUS  stat   `json:"backend_cpu_us_per_request"`
	WrkUS      stat   `json:"wrk_cpu_us_per_request"`
	HostUS     stat   `json:"host_cpu_us_per_request"`
	RestUS     stat   `json:"rest_cpu_us_per_request"`
	HostCores  stat   `json:"host_busy_cores"`
	StealCores stat   `json:"host_steal_cores"`
	// Ratios of the medians to the baseline proxy's (nginx) at the same
	// concurrency.
	CPURatio  float64 `json:"cpu_per_request_ratio"`
	RateRatio float64 `json:"req_per_sec_ratio"`
	P99Ratio  float64 `json:"p99_ratio"`
}

func summarize(runs []runRecord, o options) []summary {
	var out []summary
	for _, l := range o.loads {
		for _, p := range o.proxiesFor(l) {
			var rate, p50, p99, pu, bu, wu, hu, ru, cores, steal []float64
			s := summary{Proxy: p.Name, Load: l.Kind, Conc: l.Conc}
			for _, r := range runs {
				if r.Proxy != p.Name || r.Load != l.Kind || r.Conc != l.Conc {
					continue
				}
				if r.Discarded {
					s.Repeated++
				}
				if r.Warmup || r.Discarded {
					continue
				}
				s.Runs++
				s.Errors += r.Wrk.Errors()
				s.Requests += r.Wrk.Requests
				rate = append(rate, r.Wrk.ReqPerSec)
				p50 = append(p50, r.Wrk.P50ms)
				p99 = append(p99, r.Wrk.P99ms)
				pu = append(pu, r.ProxyUSPerReq)
				bu = append(bu, r.BackendUSPerReq)
				wu = append(wu, r.WrkUSPerReq)
				hu = append(hu, r.HostUSPerReq)
				ru = append(ru, r.RestUSPerReq)
				cores = append(cores, r.HostBusy/r.WallSeconds)
				steal = append(steal, r.HostSteal/r.WallSeconds)
			}
			s.ReqPerSec, s.P50ms, s.P99ms = newStat(rate), newStat(p50), newStat(p99)
			s.ProxyUS, s.BackendUS, s.WrkUS, s.HostUS = newStat(pu), newStat(bu), newStat(wu), newStat(hu)
			s.HostCores, s.StealCores, s.RestUS = newStat(cores), newStat(steal), newStat(ru)
			out = append(out, s)
		}
	}
	for i := range out {
		for _, b := range out {
			if b.Proxy == o.baseline && b.Load == out[i].Load && b.Conc == out[i].Conc {
				out[i].CPURatio = out[i].ProxyUS.Median / b.ProxyUS.Median
				out[i].RateRatio = out[i].ReqPerSec.Median / b.ReqPerSec.Median
				out[i].P99Ratio = out[i].P99ms.Median / b.P99ms.Median
			}
		}
	}
	return out
}

// rng formats a median with its range: "15.4 (15.1–15.9)".
func rng(s stat, format string, runs int) string {
	if runs <= 1 {
		return fmt.Sprintf(format, s.Median)
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", s.Median, s.Min, s.Max)
}

func ratio(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

func header(m meta, title string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", title)
	fmt.Fprintf(&b, "- Date: %s\n", m.Date)
	fmt.Fprintf(&b, "- Machine: %s CPUs, %s, Linux %s\n", m.Machine["nproc"], m.Machine["cpu"], m.Machine["kernel"])
	var names []string
	for k := range m.Versions {
		names = append(names, k)
	}
	sort.Strings(names)
	var vs []string
	for _, k := range names {
		vs = append(vs, "`"+m.Versions[k]+"`")
	}
	fmt.Fprintf(&b, "- Versions: %s\n", strings.Join(vs, ", "))
	fmt.Fprintf(&b, "- Host load before the start: %.2f CPUs busy\n", math.Max(0, m.HostBusyBefore))
	return b.String()
}

func throughputMarkdown(rep throughputReport, o options) string {
	var b strings.Builder
	b.WriteString(header(rep.Meta, "Throughput, latency and CPU per request"))
	fmt.Fprintf(&b, "- Method: `wrk -t1 -cC -d%s --latency` on `%s`%s, %d measured run(s) per proxy, load and concurrency after one %s warm-up, proxies interleaved; "+
		"figures are medians (min–max); CPU is user+system time of all the proxy's processes from /proc, per completed request; ratios are medians over %s's.\n\n",
		o.duration, requestPath, loadNotes(o.loads, o.h2Streams), o.runs, o.warmup, o.baseline)
	b.WriteString("| load | c | proxy | req/s | p50 ms | p99 ms | errors | proxy CPU µs/req | CPU/req vs " + o.baseline + " | req/s vs " + o.baseline + " | p99 vs " + o.baseline + " |\n")
	b.WriteString("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range rep.Summary {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n",
			load{s.Load, s.Conc}.label(), s.Conc, s.Proxy, rng(s.ReqPerSec, "%.0f", s.Runs), rng(s.P50ms, "%.2f", s.Runs), rng(s.P99ms, "%.2f", s.Runs),
			s.Errors, rng(s.ProxyUS, "%.1f", s.Runs), ratio(s.CPURatio), ratio(s.RateRatio), ratio(s.P99Ratio))
	}
	b.WriteString("\nWhere the CPU went (medians, µs per request; the host has " + rep.Meta.Machine["nproc"] + " CPUs, wrk and the backends share them with the proxy):\n\n")
	client, clients := "wrk", "wrk"
	if o.hasLoad(loadH2) {
		client, clients = "wrk (HTTP/2: h2load)", "wrk or h2load"
	}
	b.WriteString("| load | c | proxy | proxy | 3 backends | " + client + " | rest of host | whole host | host busy (CPUs) | steal (CPUs) |\n")
	b.WriteString("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range rep.Summary {
		fmt.Fprintf(&b, "| %s | %d | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f |\n",
			load{s.Load, s.Conc}.label(), s.Conc, s.Proxy, s.ProxyUS.Median, s.BackendUS.Median, s.WrkUS.Median, s.RestUS.Median, s.HostUS.Median, s.HostCores.Median, s.StealCores.Median)
	}
	b.WriteString("\nRest of host: busy time not charged to the proxy, the backends or " + clients + " (other processes; kernel softirq time not charged to a process).")
	repeated := 0
	for _, s := range rep.Summary {
		repeated += s.Repeated
	}
	if o.repeats > 0 {
		fmt.Fprintf(&b, " A run in which it exceeded %.0f%% of the host's busy time was disturbed by other load and repeated (up to %d time(s)); %d run(s) were repeated.", o.maxRest*100, o.repeats, repeated)
	}
	b.WriteString("\n")
	return b.String()
}

// loadNotes says how the loads present other than plain HTTP differ from it.
func loadNotes(loads []load, h2Streams int) string {
	var tls, gz, h2 bool
	for _, l := range loads {
		tls = tls || l.Kind == loadTLS || l.Kind == loadHandshake
		gz = gz || l.Kind == loadGzip
		h2 = h2 || l.Kind == loadH2
	}
	var notes []string
	if tls {
		notes = append(notes, "over https for the TLS loads, with `-H 'Connection: close'` for a handshake per request")
	}
	if gz {
		notes = append(notes, "for the gzip load on `"+gzipPath+"` with `-H '"+gzipHeader+"'`, from listeners compressing application/json at gzip level 1")
	}
	if h2 {
		notes = append(notes, fmt.Sprintf("for the HTTP/2 load `h2load -t1 -cC -m%d -D` over https with ALPN h2 instead, latency percentiles from its per-request log, errors its failed requests", h2Streams))
	}
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, "; ") + ")"
}

// commandOutput runs a command and returns its combined output (nginx -v
// and wrk -v print on stderr, wrk -v exits 1).
func commandOutput(name string, args ...string) string {
	var buf bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil && buf.Len() == 0 {
		return name + ": " + err.Error()
	}
	return buf.String()
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
