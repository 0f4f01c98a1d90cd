package swarmtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
)

// markerFile, in a run's directory, names the process that owns the run.
const markerFile = "swarmtest-run.json"

// createdNetnsFile, in BaseDir, records that a run created /run/netns (ip
// netns add mounts it), so the last run to end unmounts it again.
const createdNetnsFile = "created-run-netns"

type marker struct {
	PID   int    `json:"pid"`
	Start string `json:"start"` // the owner's start time, against pid reuse
}

var runIDRE = regexp.MustCompile(`^[0-9a-f]{6}$`)

// lockBase holds an exclusive lock on BaseDir while f runs: claims,
// sweeps and the unmounting of /run/netns never interleave between the
// runs of parallel test processes.
func lockBase(f func() error) error {
	if err := os.MkdirAll(BaseDir, 0o755); err != nil {
		return err
	}
	l, err := os.OpenFile(filepath.Join(BaseDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := syscall.Flock(int(l.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", BaseDir, err)
	}
	defer syscall.Flock(int(l.Fd()), syscall.LOCK_UN)
	return f()
}

// claim gives the run an id, a directory with its marker, and a subnet
// 10.99.X.0/24 no other live run uses.
func (s *Swarm) claim() error {
	return lockBase(func() error {
		var b [3]byte
		for {
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			s.ID = hex.EncodeToString(b[:])
			s.Dir = filepath.Join(BaseDir, s.ID)
			if err := os.Mkdir(s.Dir, 0o755); err == nil {
				break
			} else if !errors.Is(err, os.ErrExist) {
				return err
			}
		}
		me, ok := readProc(os.Getpid())
		if !ok {
			return errors.New("cannot read /proc/self/stat")
		}
		mb, _ := json.Marshal(marker{PID: os.Getpid(), Start: me.start})
		if err := os.WriteFile(filepath.Join(s.Dir, markerFile), mb, 0o644); err != nil {
			return err
		}
		if _, err := os.Stat("/run/netns"); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(filepath.Join(BaseDir, createdNetnsFile), nil, 0o644); err != nil {
				return err
			}
		}
		start, err := rand.Int(rand.Reader, big.NewInt(254))
		if err != nil {
			return err
		}
		for k := range 254 {
			x := (int(start.Int64())+k)%254 + 1
			claim := filepath.Join(BaseDir, fmt.Sprintf("net-%d", x))
			f, err := os.OpenFile(claim, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if errors.Is(err, os.ErrExist) {
				continue
			} else if err != nil {
				return err
			}
			_, err = f.WriteString(s.ID)
			f.Close()
			if err != nil {
				return err
			}
			s.netClaim = claim
			s.Subnet = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(x), 0}), 24)
			return nil
		}
		return errors.New("every subnet 10.99.X.0/24 is claimed by a run")
	})
}

// alive tells whether the process that created the run in dir still runs.
func alive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, markerFile))
	if err != nil {
		return false
	}
	var m marker
	if json.Unmarshal(b, &m) != nil || m.PID <= 0 {
		return false
	}
	p, ok := readProc(m.PID)
	return ok && p.start == m.Start
}

// sweep removes what runs of test processes that no longer exist left
// behind: their directories (whose marker names a dead owner), network
// namespaces, processes, cgroups and subnet claims.
func sweep() error { return lockBase(sweepLocked) }

// sweepLocked is sweep for a caller that holds the lock of BaseDir.
func sweepLocked() error {
	var errs []error
	ents, err := os.ReadDir(BaseDir)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, e := range ents {
		if !e.IsDir() || !runIDRE.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(BaseDir, e.Name())
		if alive(dir) {
			live[e.Name()] = true
			continue
		}
		if err := removeRun(e.Name(), nil); err != nil {
			errs = append(errs, fmt.Errorf("run %s: %w", e.Name(), err))
		}
	}
	// Namespaces of a run whose directory is gone (they are created
	// after it and deleted before it, so their run has ended).
	nss, _ := os.ReadDir("/run/netns")
	for _, ns := range nss {
		id, ok := runOfNetns(ns.Name())
		if ok && !live[id] {
			if _, err := os.Stat(filepath.Join(BaseDir, id)); errors.Is(err, os.ErrNotExist) {
				if err := removeRun(id, nil); err != nil {
					errs = append(errs, fmt.Errorf("run %s: %w", id, err))
				}
			}
		}
	}
	errs = append(errs, releaseClaims(live))
	errs = append(errs, unmountRunNetns(live))
	return errors.Join(errs...)
}

// runOfNetns returns the run id of a namespace named wst-ID-….
func runOfNetns(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok || len(rest) < 7 || rest[6] != '-' || !runIDRE.MatchString(rest[:6]) {
		return "", false
	}
	return rest[:6], true
}

// runNetns lists the network namespaces of run id.
func runNetns(id string) []string {
	nss, _ := os.ReadDir("/run/netns")
	var out []string
	for _, ns := range nss {
		if got, ok := runOfNetns(ns.Name()); ok && got == id {
			out = append(out, ns.Name())
		}
	}
	return out
}

// runCgroups lists the names of the cgroups of run id's nodes.
func runCgroups(id string) []string {
	names := map[string]bool{}
	for _, h := range append([]string{"/sys/fs/cgroup"}, cgroupHierarchies()...) {
		ents, _ := os.ReadDir(h)
		for _, e := range ents {
			if got, ok := runOfNetns(e.Name()); ok && got == id && e.IsDir() {
				names[e.Name()] = true
			}
		}
	}
	var out []string
	for n := range names {
		out = append(out, n)
	}
	return out
}

func cgroupHierarchies() []string {
	hs, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, h := range hs {
		if h.IsDir() {
			out = append(out, filepath.Join("/sys/fs/cgroup", h.Name()))
		}
	}
	return out
}

// removeRun removes everything of run id but the engines' graceful stop:
// it kills the processes of its network namespaces, of the mount
// namespaces of those (where its engines, containerd and shims run), of
// held (the mount namespaces its engines ran in, held open by the caller)
// and of its cgroups; then it deletes its network namespaces, cgroups and
// directory, and releases its subnet claim.
func removeRun(id string, held pins) error {
	var errs []error
	sel := selection{mnts: pins{}, nets: map[string]bool{}, cgroups: runCgroups(id)}
	defer sel.mnts.close()
	for mnt, f := range held {
		sel.mnts[mnt] = f
	}
	nss := runNetns(id)
	for _, ns := range nss {
		if net, err := nsID("net", "/run/netns/"+ns); err == nil {
			sel.nets[net] = true
		}
	}
	// Whatever runs in a node's network namespace (dockerd, containerd,
	// the shims) shares the mount namespace ip netns exec made for it;
	// hold that open while the processes are alive to say which it is.
	host := hostNamespaces()
	for _, p := range procs() {
		if !sel.nets[p.net] || host[p.mnt] {
			continue
		}
		if _, ok := sel.mnts[p.mnt]; ok {
			continue
		}
		own := pins{}
		if mnt, err := own.pin(p.pid); err == nil && mnt == p.mnt {
			if now, ok := readProc(p.pid); ok && now.start == p.start {
				sel.mnts[mnt] = own[mnt]
				continue
			}
		}
		own.close()
	}
	if err := sel.kill(15 * time.Second); err != nil {
		errs = append(errs, err)
	}
	for mnt, f := range sel.mnts {
		if _, theirs := held[mnt]; !theirs {
			f.Close()
		}
		delete(sel.mnts, mnt)
	}
	for _, ns := range nss {
		if err := ipCmd("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeCgroups(sel.cgroups); err != nil {
		errs = append(errs, err)
	}
	dir := filepath.Join(BaseDir, id)
	for _, m := range mountsUnder(dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	ents, _ := os.ReadDir(BaseDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "net-") {
			if b, _ := os.ReadFile(filepath.Join(BaseDir, e.Name())); string(b) == id {
				os.Remove(filepath.Join(BaseDir, e.Name()))
			}
		}
	}
	return errors.Join(errs...)
}

// releaseClaims removes the subnet claims of runs not in live whose
// directory is gone.
func releaseClaims(live map[string]bool) error {
	ents, err := os.ReadDir(BaseDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "net-") {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(BaseDir, e.Name()))
		id := string(b)
		if live[id] {
			continue
		}
		if _, err := os.Stat(filepath.Join(BaseDir, id)); errors.Is(err, os.ErrNotExist) || id == "" {
			os.Remove(filepath.Join(BaseDir, e.Name()))
		}
	}
	return nil
}

// unmountRunNetns undoes the mount of /run/netns that `ip netns add` made
// for a run, once no run is live and no namespace is left in it.
func unmountRunNetns(live map[string]bool) error {
	created := filepath.Join(BaseDir, createdNetnsFile)
	if _, err := os.Stat(created); err != nil {
		return nil
	}
	if len(live) > 0 {
		return nil
	}
	if ents, err := os.ReadDir("/run/netns"); err == nil && len(ents) > 0 {
		return nil // someone else's namespaces live there now
	}
	if err := syscall.Unmount("/run/netns", 0); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
		return fmt.Errorf("unmount /run/netns: %w", err)
	}
	if err := os.Remove("/run/netns"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Remove(created)
}

// liveRuns lists the runs in BaseDir whose owner still runs.
func liveRuns() map[string]bool {
	live := map[string]bool{}
	ents, _ := os.ReadDir(BaseDir)
	for _, e := range ents {
		if e.IsDir() && runIDRE.MatchString(e.Name()) && alive(filepath.Join(BaseDir, e.Name())) {
			live[e.Name()] = true
		}
	}
	return live
}

// pinEngine holds open the mount namespace of process pid, a node's
// engine, for the sweep at the end of the run. It reports false when pid
// is not (yet) in a mount namespace of its own, or when ours() says that
// pid may no longer be the engine (it has exited and been reaped).
func (s *Swarm) pinEngine(pid int, ours func() bool) (string, bool) {
	p := pins{}
	mnt, err := p.pin(pid)
	if err != nil || mnt == selfMnt() || !ours() {
		p.close()
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pins[mnt]; ok {
		p.close()
	} else {
		s.pins[mnt] = p[mnt]
	}
	return mnt, true
}

// cleanup removes the run: see the package comment.
func (s *Swarm) cleanup() {
	t0 := time.Now()
	var errs []error
	if s.tb.Failed() {
		// The logs go with the run's directory.
		for _, n := range s.Nodes {
			s.tb.Logf("swarmtest: the end of %s's dockerd log:\n%s", n.Name, n.logTail(20))
		}
	}
	if err := s.removeWorkloads(); err != nil {
		s.tb.Logf("swarmtest: removing services and containers: %v", err)
	}
	tWork := time.Since(t0)
	var killed atomic.Int32
	if err := s.parallel(func(n *Node) error {
		k, err := n.stop(teardownGrace)
		if k {
			killed.Add(1)
		}
		return err
	}); err != nil {
		errs = append(errs, err)
	}
	tStop := time.Since(t0)
	for _, n := range s.Nodes {
		if n.Client != nil {
			n.Client.Close()
		}
	}
	s.mu.Lock()
	held := s.pins
	s.pins = pins{}
	s.mu.Unlock()
	defer held.close()
	err := lockBase(func() error {
		err := removeRun(s.ID, held)
		live := liveRuns()
		delete(live, s.ID)
		return errors.Join(err, unmountRunNetns(live))
	})
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		s.tb.Errorf("swarmtest: teardown of run %s: %v", s.ID, err)
	}
	s.tb.Logf("swarmtest: run %s torn down in %s (services and containers %s, engines %s with %d killed after %s, the rest %s)",
		s.ID, since(t0), round(tWork), round(tStop-tWork), killed.Load(), teardownGrace, since(t0.Add(tStop)))
}

// removeWorkloads removes the services (on a manager) and then every
// container of every running engine, so that no engine leaves a container
// behind when it stops.
func (s *Swarm) removeWorkloads() error {
	var errs []error
	for _, n := range s.Nodes {
		if !n.Manager || !n.running() {
			continue
		}
		ctx, cancel := callCtx()
		svcs, err := n.Client.ServiceList(ctx, swarm.ServiceListOptions{})
		if err == nil {
			for _, svc := range svcs {
				if err := n.Client.ServiceRemove(ctx, svc.ID); err != nil {
					errs = append(errs, fmt.Errorf("%s: remove service %s: %w", n.Name, svc.Spec.Name, err))
				}
			}
		}
		cancel()
		if err == nil {
			break
		}
	}
	errs = append(errs, s.parallel(func(n *Node) error {
		if !n.running() {
			return nil
		}
		ctx, cancel := callCtx()
		defer cancel()
		cs, err := n.Client.ContainerList(ctx, container.ListOptions{All: true})
		if err != nil {
			return fmt.Errorf("%s: list containers: %w", n.Name, err)
		}
		var errs []error
		for _, c := range cs {
			err := n.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
			if err != nil && !strings.Contains(err.Error(), "No such container") && !strings.Contains(err.Error(), "already in progress") {
				errs = append(errs, fmt.Errorf("%s: remove container %s: %w", n.Name, c.ID[:12], err))
			}
		}
		return errors.Join(errs...)
	}))
	return errors.Join(errs...)
}

// Leftovers lists what of the run still exists: namespaces, processes,
// mounts, cgroups, directories and claims. After the test that started
// the swarm has ended (its cleanup has run), it should be empty.
//
// Processes count as the run's when they are in its network namespaces or
// cgroups, name its directory on their command line (dockerd, containerd,
// the shims), or descend from one that does; not by the ids of mount
// namespaces that may no longer exist.
func (s *Swarm) Leftovers() []string {
	var left []string
	nss := runNetns(s.ID)
	for _, ns := range nss {
		left = append(left, "netns "+ns)
	}
	sel := selection{nets: map[string]bool{}, cgroups: runCgroups(s.ID)}
	for _, ns := range nss {
		if net, err := nsID("net", "/run/netns/"+ns); err == nil {
			sel.nets[net] = true
		}
	}
	found := map[int]bool{}
	for _, p := range sel.find() {
		found[p.pid] = true
	}
	ps := procs()
	for pid := range ps {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(b, []byte(s.Dir+"/")) {
			found[pid] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for pid, p := range ps {
			if !found[pid] && found[p.ppid] && p.state != 'Z' {
				found[pid] = true
				changed = true
			}
		}
	}
	var pids []int
	for pid := range found {
		if p, ok := ps[pid]; ok && p.state != 'Z' && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	for _, pid := range pids {
		left = append(left, "process "+describe(pid))
	}
	for _, dir := range cgroupDirs(sel.cgroups) {
		left = append(left, "cgroup "+dir)
	}
	for _, m := range mountsUnder(s.Dir) {
		left = append(left, "mount "+m)
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), namePrefix+s.ID) {
		left = append(left, "a mount naming "+namePrefix+s.ID)
	}
	if _, err := os.Stat(s.Dir); err == nil {
		left = append(left, "directory "+s.Dir)
	}
	if s.netClaim != "" {
		if _, err := os.Stat(s.netClaim); err == nil {
			left = append(left, "subnet claim "+s.netClaim)
		}
	}
	return left
}
