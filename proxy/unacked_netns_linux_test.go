package proxy

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wharflb/wharf/lb"
)

// TestVanishedPeerFailsFast puts a peer in a network namespace of the
// test's own, behind a veth pair, and makes it vanish after it answered
// once: every packet to it is dropped, as when a container's network is
// removed or its node is cut off, so no reset ever comes. The next request
// written on the kept connection must fail within Timeouts.UpstreamUnacked
// (TCP_USER_TIMEOUT) and go to the other peer, instead of waiting for the
// response timeout. Traffic goes only to the namespace's address, over the
// veth's own route.
func TestVanishedPeerFailsFast(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a network namespace needs root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	id := rand.IntN(1 << 16)
	ns, hostIf, nsIf := fmt.Sprintf("wharf-unacked-%04x", id), fmt.Sprintf("wua%04x", id), fmt.Sprintf("wub%04x", id)
	subnet := fmt.Sprintf("10.213.%d.%d", id>>8, id&0xfc)
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostIf).Run() })
	run("ip", "addr", "add", subnet[:strings.LastIndexByte(subnet, '.')+1]+fmt.Sprint(id&0xfc+1)+"/30", "dev", hostIf)
	run("ip", "link", "set", hostIf, "up")
	peerIP := subnet[:strings.LastIndexByte(subnet, '.')+1] + fmt.Sprint(id&0xfc+2)
	run("ip", "-n", ns, "addr", "add", peerIP+"/30", "dev", nsIf)
	run("ip", "-n", ns, "link", "set", nsIf, "up")

	ln := listenInNetns(t, ns, net.JoinHostPort(peerIP, "8080"))
	vanish := func(on bool) error {
		if !on {
			exec.Command("ip", "netns", "exec", ns, "nft", "delete table inet wharf_vanish").Run()
			return nil
		}
		cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader("table inet wharf_vanish {\n\tchain input { type filter hook input priority 0; policy drop; }\n" +
			"\tchain output { type filter hook output priority 0; policy drop; }\n}\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("nft: %v: %s", err, out)
		}
		return nil
	}
	vanishErr := make(chan error, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/vanish-after-read" {
			// The request is read and acknowledged; the answer is lost
			// with the host.
			vanishErr <- vanish(true)
		}
		io.WriteString(w, "vanishing")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	healthy := newBackend(t, "healthy", nil)

	forEachEngine(t, func(t *testing.T, e engine) {
		vanish(false)
		peer := lb.Backend{ID: "vanishing", Name: "vanishing", Network: "tcp", Addr: ln.Addr().String(),
			Weight: 100, MaxFails: 1, FailTimeout: time.Minute}
		url, _ := e.start(t, Config{Timeouts: Timeouts{UpstreamUnacked: 300 * time.Millisecond}}, peer, healthy.backend(1))
		client := &http.Client{Timeout: waitBound}
		get := func(path string) string {
			t.Helper()
			res, err := client.Get(url + path)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return fmt.Sprintf("%d %s", res.StatusCode, b)
		}
		if got := get("/"); got != "200 vanishing" {
			t.Fatalf("first request: %q", got)
		}
		if err := vanish(true); err != nil {
			t.Fatal(err)
		}
		defer vanish(false)
		start := time.Now()
		if got := get("/"); got != "200 healthy" {
			t.Fatalf("after the peer vanished: %q, want the other peer's answer", got)
		}
		t.Logf("answered by the other peer %v after the vanished one was tried", time.Since(start).Round(time.Millisecond))
	})
	// The peer vanishes after it read the request: nothing wharf sent is
	// left unacknowledged, and only the keep-alive probes find out.
	forEachEngine(t, func(t *testing.T, e engine) {
		vanish(false)
		peer := lb.Backend{ID: "vanishing", Name: "vanishing", Network: "tcp", Addr: ln.Addr().String(),
			Weight: 100, MaxFails: 1, FailTimeout: time.Minute}
		url, _ := e.start(t, Config{Timeouts: Timeouts{UpstreamUnacked: 300 * time.Millisecond}}, peer, healthy.backend(1))
		defer vanish(false)
		client := &http.Client{Timeout: waitBound}
		start := time.Now()
		res, err := client.Get(url + "/vanish-after-read")
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if err := <-vanishErr; err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%d %s", res.StatusCode, b); got != "200 healthy" {
			t.Fatalf("answer lost with the peer: %q, want the other peer's answer", got)
		}
		took := time.Since(start)
		if took > 5*time.Second {
			t.Errorf("answered after %v: the wait for the lost answer outlasted the 300ms limit by far", took)
		}
		t.Logf("answer lost with the peer: answered by the other peer %v after the request", took.Round(time.Millisecond))
	})
}

// listenInNetns listens on addr inside the network namespace ns. The
// socket stays in ns; the thread that made it goes back to its own
// namespace, or ends with its goroutine if it cannot.
func listenInNetns(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked when setns back fails: the thread then ends
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer own.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		ln, lerr := net.Listen("tcp", addr)
		if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
			if ln != nil {
				ln.Close()
			}
			done <- result{err: err}
			return
		}
		runtime.UnlockOSThread()
		done <- result{ln, lerr}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("listen in %s: %v", ns, r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}
