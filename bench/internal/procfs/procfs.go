// Package procfs reads what the benchmark drivers measure of processes
// from Linux's /proc: parent links, CPU time, resident memory, and the
// open-file limit.
package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Stat is what the benchmarks need from /proc/PID/stat.
type Stat struct {
	PPID         int
	UTime, STime uint64 // clock ticks, all threads of the process, live and exited
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	// The command name (field 2) may contain spaces and parentheses; the
	// fields after the last ')' are plain numbers, starting with field 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var s Stat
	if s.PPID, err = strconv.Atoi(f[1]); err != nil { // field 4
		return Stat{}, err
	}
	if s.UTime, err = strconv.ParseUint(f[11], 10, 64); err != nil { // field 14
		return Stat{}, err
	}
	if s.STime, err = strconv.ParseUint(f[12], 10, 64); err != nil { // field 15
		return Stat{}, err
	}
	return s, nil
}

// ProcessTree returns root and all its descendants (nginx's master and
// workers, for instance), sorted. The kernel here may lack
// /proc/PID/task/TID/children, so the parent links of every process are read.
func ProcessTree(root int) ([]int, error) {
	if _, err := ReadStat(root); err != nil {
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
		s, err := ReadStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		children[s.PPID] = append(children[s.PPID], pid)
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	sort.Ints(tree)
	return tree, nil
}

// Memory is the resident memory of a group of processes, in bytes. RSS
// counts pages shared between processes (nginx's master and workers) once
// per process; PSS divides them among their sharers, so its sum is exact.
type Memory struct {
	RSS int64 `json:"rss_bytes"`
	PSS int64 `json:"pss_bytes"`
}

// ReadMemory sums the memory of the processes pids.
func ReadMemory(pids []int) (Memory, error) {
	var m Memory
	for _, pid := range pids {
		rss, err := statusField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		if err != nil {
			return Memory{}, err
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

// RaiseFileLimit sets the soft open-file limit to the hard one and checks
// that n connections fit.
func RaiseFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raising the open-file limit: %w", err)
		}
	}
	if uint64(n)+200 > lim.Cur {
		return fmt.Errorf("%d connections need about %d open files, the limit is %d", n, n+200, lim.Cur)
	}
	return nil
}
