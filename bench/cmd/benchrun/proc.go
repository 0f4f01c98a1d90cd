package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (getconf CLK_TCK).
var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
}()

// procStat is what the benchmark needs from /proc/PID/stat.
type procStat struct {
	ppid         int
	utime, stime uint64 // clock ticks, all threads of the process, live and exited
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) may contain spaces and parentheses; the
	// fields after the last ')' are plain numbers, starting with field 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var s procStat
	if s.ppid, err = strconv.Atoi(f[1]); err != nil { // field 4
		return procStat{}, err
	}
	if s.utime, err = strconv.ParseUint(f[11], 10, 64); err != nil { // field 14
		return procStat{}, err
	}
	if s.stime, err = strconv.ParseUint(f[12], 10, 64); err != nil { // field 15
		return procStat{}, err
	}
	return s, nil
}

// processTree returns root and all its descendants (nginx's master and
// workers, for instance), sorted. The kernel here may lack
// /proc/PID/task/TID/children, so the parent links of every process are read.
func processTree(root int) ([]int, error) {
	if _, err := readStat(root); err != nil {
		return nil, fmt.Errorf("process %d: %w", root, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		children[s.ppid] = append(children[s.ppid], pid)
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	sort.Ints(tree)
	return tree, nil
}

// cpuSeconds is the user+system CPU time consumed so far by the processes,
// each counted over all its threads (/proc/PID/stat aggregates the thread
// group, including threads that have exited). A process that is gone is an
// error: its time could no longer be accounted.
func cpuSeconds(pids []int) (float64, error) {
	var ticks uint64
	for _, pid := range pids {
		s, err := readStat(pid)
		if err != nil {
			return 0, fmt.Errorf("process %d: %w", pid, err)
		}
		ticks += s.utime + s.stime
	}
	return float64(ticks) / clockTicks, nil
}

// memory is the resident memory of a group of processes, in bytes. RSS
// counts pages shared between processes (nginx's master and workers) once
// per process; PSS divides them among their sharers, so its sum is exact.
type memory struct {
	RSS int64 `json:"rss_bytes"`
	PSS int64 `json:"pss_bytes"`
}

func readMemory(pids []int) (memory, error) {
	var m memory
	for _, pid := range pids {
		rss, err := statusField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		if err != nil {
			return memory{}, err
		}
		m.RSS += rss
		// smaps_rollup exists since Linux 4.14; without it PSS stays 0.
		if pss, err := statusField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:"); err == nil {
			m.PSS += pss
		}
	}
	return m, nil
}

// statusField reads a "Key:   123 kB" line of a /proc file, in bytes.
func statusField(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		fs := strings.Fields(line[len(key):])
		if len(fs) == 0 {
			break
		}
		v, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", path, key, err)
		}
		if len(fs) > 1 && fs[1] == "kB" {
			v *= 1024
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s line", path, key)
}

// hostCPU is the machine-wide CPU time from the first line of /proc/stat,
// in seconds summed over all CPUs.
type hostCPU struct {
	busy, steal, total float64
}

func readHostCPU() (hostCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostCPU{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return hostCPU{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice];
	// guest time is already part of user time.
	var v [8]float64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return hostCPU{}, err
		}
		v[i] = float64(n) / clockTicks
	}
	var h hostCPU
	for _, x := range v {
		h.total += x
	}
	h.steal = v[7]
	h.busy = h.total - v[3] - v[4] - v[7]
	return h, nil
}

// cpuModel names the processor, from /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// kernelRelease is uname -r.
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
