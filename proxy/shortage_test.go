package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wharflb/wharf/lb"
)

// shortageChildEnv carries, to the child process of
// TestShortageDoesNotBlamePeer, the engine to run and the backend address.
const shortageChildEnv = "WHARF_TEST_SHORTAGE_CHILD"

// TestShortageDoesNotBlamePeer runs the proxy in a child process that has
// used up its file descriptors but one, which the client's connection
// takes: the dial to the healthy peer fails with EMFILE. The client must
// get 503, and the peer must stay available with no failure counted; once
// descriptors are free again, requests are served.
func TestShortageDoesNotBlamePeer(t *testing.T) {
	if spec := os.Getenv(shortageChildEnv); spec != "" {
		shortageChild(spec)
		return
	}
	be := newBackend(t, "web1", nil)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestShortageDoesNotBlamePeer$", "-test.v")
			cmd.Env = append(os.Environ(), shortageChildEnv+"="+e.name+" "+be.Addr())
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			out := bufio.NewReader(stdout)
			expect := func(prefix string) string {
				t.Helper()
				for {
					line, err := out.ReadString('\n')
					if err != nil {
						t.Fatalf("child ended before %q: %v", prefix, err)
					}
					if rest, ok := strings.CutPrefix(line, prefix); ok {
						return strings.TrimSpace(rest)
					}
				}
			}
			url := expect("listening ")
			tr := testTransport()
			tr.DisableKeepAlives = true
			// The child made its own test certificate, which this process
			// cannot know: what is tested here is not the certificate.
			tr.TLSClientConfig.InsecureSkipVerify = true
			client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
			if isH2(url) {
				// One HTTP/2 connection, made once the child is short of
				// descriptors: it takes the last one.
				h2 := newH2RoundTripper()
				h2.tls.TLSClientConfig.InsecureSkipVerify = true
				defer h2.CloseIdleConnections()
				client.Transport = h2
			}
			get := func() (int, string) {
				t.Helper()
				res, err := client.Get(url + "/")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				return res.StatusCode, string(b)
			}

			expect("exhausted")
			if status, body := get(); status != 503 || !strings.Contains(body, msgShortage) {
				t.Fatalf("with no descriptor for the peer: %d %q, want 503 %q", status, body, msgShortage)
			}
			fmt.Fprintln(stdin, "free")
			if got := expect("peer "); got != "available failures=0 in_flight=0" {
				t.Fatalf("after the shortage the peer is %q, want available, no failure counted", got)
			}
			if status, body := get(); status != 200 || body != "web1" {
				t.Fatalf("with descriptors free again: %d %q, want 200 web1", status, body)
			}
			fmt.Fprintln(stdin, "end")
			cmd.Wait()
		})
	}
}

// shortageChild is the child's side: start the engine named in spec in
// front of the backend, use up every descriptor but one, and report.
func shortageChild(spec string) {
	name, addr, _ := strings.Cut(spec, " ")
	var e engine
	for _, x := range engines {
		if x.name == name {
			e = x
		}
	}
	t := &testing.T{}
	url, bal := e.start(t, Config{}, lb.Backend{ID: "web1", Name: "web1", Network: "tcp", Addr: addr,
		Weight: 1, MaxFails: 1, FailTimeout: time.Minute})
	fmt.Println("listening", url)

	// Hold every descriptor the limit allows but one.
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = 256
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	var held []int
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		held = append(held, fd)
	}
	syscall.Close(held[len(held)-1])
	held = held[:len(held)-1]
	fmt.Println("exhausted")

	in := bufio.NewScanner(os.Stdin)
	in.Scan() // "free"
	for _, fd := range held {
		syscall.Close(fd)
	}
	p := bal.Table().Pool(lb.DefaultService).Peers()[0]
	state := "available"
	if !p.Available(bal.Now()) {
		state = "down"
	}
	fmt.Printf("peer %s failures=%d in_flight=%d\n", state, p.Failures(), p.InFlight())
	in.Scan() // "end"
	os.Exit(0)
}
