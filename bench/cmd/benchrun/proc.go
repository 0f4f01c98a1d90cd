package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/wharflb/wharf/bench/internal/procfs"
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

// cpuSeconds is the user+system CPU time consumed so far by the processes,
// each counted over all its threads (/proc/PID/stat aggregates the thread
// group, including threads that have exited). A process that is gone is an
// error: its time could no longer be accounted.
func cpuSeconds(pids []int) (float64, error) {
	var ticks uint64
	for _, pid := range pids {
		s, err := procfs.ReadStat(pid)
		if err != nil {
			return 0, fmt.Errorf("process %d: %w", pid, err)
		}
		ticks += s.UTime + s.STime
	}
	return float64(ticks) / clockTicks, nil
}

// memory is a process group's resident memory (procfs.Memory).
type memory = procfs.Memory

var (
	readMemory  = procfs.ReadMemory
	processTree = procfs.ProcessTree
)

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
