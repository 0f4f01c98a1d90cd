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

	"golang.org/x/sys/unix"
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

// hostNS holds the ids of the namespaces of the machine itself: those of
// init and those the test process started in. They are read when the
// package is initialised, on the main thread, because /proc/self names
// the main thread, whose network namespace a dial from a swarm's
// namespace may have changed since (see dialIn).
var hostNS = func() map[string]bool {
	h := map[string]bool{"": true}
	for _, pid := range []string{"1", "self"} {
		for _, ns := range []string{"mnt", "net"} {
			if l, err := os.Readlink("/proc/" + pid + "/ns/" + ns); err == nil {
				h[l] = true
			}
		}
	}
	return h
}()

// hostNamespaces returns hostNS; the caller must not change it.
func hostNamespaces() map[string]bool { return hostNS }

// nsID returns the "net:[inode]" form of the namespace bound at path.
func nsID(kind, path string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:[%d]", kind, st.Ino), nil
}

// pins holds namespaces open by id ("mnt:[…]"). The kernel reuses the
// inode number of a namespace that no longer exists for the next one it
// creates (often a container's, on the main engine), so an id is matched
// against processes only while its namespace is held open here.
type pins map[string]*os.File

// pin opens the mount namespace of process pid and returns its id. The
// caller checks that pid is still the process it means.
func (ps pins) pin(pid int) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return "", err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return "", err
	}
	id := fmt.Sprintf("mnt:[%d]", st.Ino)
	if _, ok := ps[id]; ok {
		f.Close()
	} else {
		ps[id] = f
	}
	return id, nil
}

func (ps pins) close() {
	for id, f := range ps {
		f.Close()
		delete(ps, id)
	}
}

// selection names what belongs to a run: its engines, their containerd and
// shims (in the nodes' mount and network namespaces) and its containers
// (in the nodes' cgroups), and the descendants of all of them.
type selection struct {
	// mnts are mount namespaces held open (see pins), nets network
	// namespaces still bound under /run/netns: either way their ids
	// cannot name another namespace meanwhile.
	mnts pins
	nets map[string]bool
	// cgroups are cgroup names, found in every hierarchy.
	cgroups []string
}

// find returns the live processes of the selection, with their start
// times, sorted.
func (sel selection) find() []proc {
	host := hostNamespaces()
	ps := procs()
	in := map[int]bool{}
	for pid, p := range ps {
		_, inMnt := sel.mnts[p.mnt]
		if (inMnt && !host[p.mnt]) || (sel.nets[p.net] && !host[p.net]) {
			in[pid] = true
		}
	}
	for pid := range cgroupProcs(sel.cgroups) {
		if _, ok := ps[pid]; ok {
			in[pid] = true
		}
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
	var out []proc
	for pid := range in {
		if ps[pid].state != 'Z' {
			out = append(out, ps[pid])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}

// cgroupProcs returns the processes in the named cgroups and below.
func cgroupProcs(names []string) map[int]bool {
	pids := map[int]bool{}
	for _, dir := range cgroupDirs(names) {
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids[pid] = true
				}
			}
			return nil
		})
	}
	return pids
}

// kill SIGKILLs the processes of the selection, all at once (so that no
// shim's child is reparented away before it is seen), again until none is
// left, and reports those still alive after timeout.
func (sel selection) kill(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ps := sel.find()
		if len(ps) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var d []string
			for _, p := range ps {
				d = append(d, describe(p.pid))
			}
			return fmt.Errorf("processes still alive after SIGKILL: %s", strings.Join(d, "; "))
		}
		for _, p := range ps {
			signal(p, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signal sends sig to p unless its pid now names another process: the
// signal goes through a pidfd opened after checking the start time.
func signal(p proc, sig syscall.Signal) {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		return // gone
	}
	defer unix.Close(fd)
	if now, ok := readProc(p.pid); !ok || now.start != p.start {
		return
	}
	_ = unix.PidfdSendSignal(fd, sig, nil, 0)
}

// describe names process pid for an error message: command, parent,
// state, namespaces and cgroup.
func describe(pid int) string {
	dir := "/proc/" + strconv.Itoa(pid)
	comm, _ := os.ReadFile(dir + "/comm")
	cg, _ := os.ReadFile(dir + "/cgroup")
	var cgroup string
	for _, l := range strings.Split(string(cg), "\n") {
		if strings.Contains(l, namePrefix) {
			cgroup = l
			break
		}
	}
	p, _ := readProc(pid)
	return fmt.Sprintf("%d (%s) parent %d state %c %s %s cgroup %q", pid, strings.TrimSpace(string(comm)), p.ppid, p.state, p.mnt, p.net, cgroup)
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
