package swarmtest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is what the sweeper needs to know of a process.
type proc struct {
	pid, ppid int
	state     byte   // 'Z' for a zombie
	start     string // start time in clock ticks since boot
	mnt, net  string // "mnt:[…]", "net:[…]"
}

// procs lists the processes of the machine. Processes that exit while it
// reads are left out.
func procs() map[int]proc {
	ents, _ := os.ReadDir("/proc")
	ps := make(map[int]proc, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, ok := readProc(pid)
		if ok {
			ps[pid] = p
		}
	}
	return ps
}

func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	// pid (comm) state ppid … starttime is field 22; comm may hold
	// spaces and parentheses, so parse from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return proc{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return proc{}, false
	}
	p := proc{pid: pid, state: f[0][0], start: f[19]}
	p.ppid, _ = strconv.Atoi(f[1])
	p.mnt, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	p.net, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	return p, true
}

// hostNamespaces are the namespaces of the machine itself (of init and of
// the test process): whatever a run left behind is never selected by them.
func hostNamespaces() map[string]bool {
	h := map[string]bool{"": true}
	for _, pid := range []string{"1", "self"} {
		for _, ns := range []string{"mnt", "net"} {
			if l, err := os.Readlink("/proc/" + pid + "/ns/" + ns); err == nil {
				h[l] = true
			}
		}
	}
	return h
}

// nsID returns the "net:[inode]" form of the namespace bound at path.
func nsID(kind, path string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:[%d]", kind, st.Ino), nil
}

// selection names what belongs to a run: its engines, their containerd and
// shims (in the nodes' mount and network namespaces) and its containers
// (in the nodes' cgroups), and the descendants of all of them.
type selection struct {
	mnts, nets map[string]bool
	cgroups    []string // cgroup names, found in every hierarchy
}

// find returns the live processes of the selection, sorted.
func (sel selection) find() []int {
	host := hostNamespaces()
	ps := procs()
	in := map[int]bool{}
	for pid, p := range ps {
		if (sel.mnts[p.mnt] && !host[p.mnt]) || (sel.nets[p.net] && !host[p.net]) {
			in[pid] = true
		}
	}
	for _, dir := range cgroupDirs(sel.cgroups) {
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					if _, ok := ps[pid]; ok {
						in[pid] = true
					}
				}
			}
			return nil
		})
	}
	// Descendants: a container's processes are children of its shim.
	for changed := true; changed; {
		changed = false
		for pid, p := range ps {
			if !in[pid] && in[p.ppid] {
				in[pid] = true
				changed = true
			}
		}
	}
	delete(in, 1)
	delete(in, os.Getpid())
	var out []int
	for pid := range in {
		if ps[pid].state != 'Z' {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// kill SIGKILLs the processes of the selection, all at once (so that no
// shim's child is reparented away before it is seen), again until none is
// left, and reports those still alive after timeout.
func (sel selection) kill(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := sel.find()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still alive after SIGKILL: %v", pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cgroupDirs returns the existing directories of the named cgroups in
// every hierarchy mounted under /sys/fs/cgroup.
func cgroupDirs(names []string) []string {
	var dirs []string
	for _, name := range names {
		if name == "" || strings.Contains(name, "/") {
			continue
		}
		cands := []string{filepath.Join("/sys/fs/cgroup", name)}
		hs, _ := os.ReadDir("/sys/fs/cgroup")
		for _, h := range hs {
			cands = append(cands, filepath.Join("/sys/fs/cgroup", h.Name(), name))
		}
		for _, c := range cands {
			if st, err := os.Lstat(c); err == nil && st.IsDir() {
				dirs = append(dirs, c)
			}
		}
	}
	return dirs
}

// removeCgroups removes the named cgroups in every hierarchy, children
// first. A cgroup can be removed once no process is left in it.
func removeCgroups(names []string) error {
	var last error
	for try := 0; try < 20; try++ {
		dirs := cgroupDirs(names)
		if len(dirs) == 0 {
			return nil
		}
		last = nil
		for _, dir := range dirs {
			var sub []string
			filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					sub = append(sub, path)
				}
				return nil
			})
			for i := len(sub) - 1; i >= 0; i-- {
				if err := syscall.Rmdir(sub[i]); err != nil && err != syscall.ENOENT {
					last = fmt.Errorf("rmdir %s: %w", sub[i], err)
				}
			}
		}
		if last == nil {
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// mountsUnder returns the mount points of the test's mount namespace at or
// below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var ms []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if t := fields[4]; t == dir || strings.HasPrefix(t, dir+"/") {
			ms = append(ms, t)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ms)))
	return ms
}
