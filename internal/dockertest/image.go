package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

// ImageOptions describe a FROM scratch image of one of this module's
// commands. The zero value is an image with no exposed port and no
// HEALTHCHECK whose entrypoint is the binary.
type ImageOptions struct {
	// Expose lists the ports the image exposes, as "6969/tcp" or "6969".
	Expose []string
	// Healthcheck, if not nil, becomes the image's HEALTHCHECK.
	Healthcheck *Healthcheck
	// Env lists NAME=VALUE pairs set in the image.
	Env []string
}

// Healthcheck is a Dockerfile HEALTHCHECK. Zero durations and retries
// mean Docker's defaults.
type Healthcheck struct {
	Cmd         []string // exec form, e.g. {"/webtest", "healthcheck"}
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// WebtestPort is the port cmd/webtest listens on.
const WebtestPort = "6969/tcp"

// WebtestImage returns the image of cmd/webtest exposing 6969/tcp, with no
// HEALTHCHECK. It is built once per test process.
func WebtestImage(tb testing.TB, cli *client.Client) string {
	tb.Helper()
	return BuildImage(tb, cli, "webtest", ImageOptions{Expose: []string{WebtestPort}})
}

// WebtestHealthImage returns the image of cmd/webtest exposing 6969/tcp
// with a HEALTHCHECK ("webtest healthcheck") every 500ms that turns the
// container unhealthy after one failure (POST /healthz?fail=1). It is built
// once per test process.
func WebtestHealthImage(tb testing.TB, cli *client.Client) string {
	tb.Helper()
	return BuildImage(tb, cli, "webtest", ImageOptions{
		Expose: []string{WebtestPort},
		Healthcheck: &Healthcheck{
			Cmd:      []string{"/webtest", "healthcheck"},
			Interval: 500 * time.Millisecond,
			Timeout:  2 * time.Second,
			Retries:  1,
		},
	})
}

type imageEntry struct {
	once sync.Once
	tag  string
	err  error
}

var (
	imagesMu sync.Mutex
	images   = map[string]*imageEntry{}

	binMu     sync.Mutex
	bins      = map[string]*binEntry{}
	binOnce   sync.Once
	binDir    string
	binDirErr error
)

type binEntry struct {
	once sync.Once
	path string
	err  error
}

// BuildImage compiles a command of this module (CGO_ENABLED=0, for linux
// and the host's architecture) and builds a FROM scratch image with the
// binary at /BASE as its entrypoint, described by opts. name is a command
// under ./cmd ("wharf") or a package path from the module root
// ("internal/testweb"); BASE is its last element. It returns the
// image's tag. The image is built once per test process for each name and
// opts, however many tests ask; it is removed by Main. A failed build fails
// tb.
func BuildImage(tb testing.TB, cli *client.Client, name string, opts ImageOptions) string {
	tb.Helper()
	df := dockerfile(name, opts)
	key := name + "\x00" + df

	imagesMu.Lock()
	e := images[key]
	if e == nil {
		e = &imageEntry{tag: fmt.Sprintf("wharf-test-%s-%s-%d:latest", path.Base(name), runID, len(images)+1)}
		images[key] = e
	}
	imagesMu.Unlock()

	e.once.Do(func() {
		bin, err := compile(name)
		if err != nil {
			e.err = err
			return
		}
		e.err = buildImage(cli, e.tag, path.Base(name), bin, df)
	})
	if e.err != nil {
		tb.Fatalf("dockertest: image of %s: %v", pkgPath(name), e.err)
	}
	return e.tag
}

// dockerfile returns the Dockerfile of the image of command name.
func dockerfile(name string, opts ImageOptions) string {
	name = path.Base(name)
	var b strings.Builder
	fmt.Fprintf(&b, "FROM scratch\nCOPY %s /%s\n", name, name)
	for _, p := range opts.Expose {
		fmt.Fprintf(&b, "EXPOSE %s\n", p)
	}
	for _, e := range opts.Env {
		k, v, _ := strings.Cut(e, "=")
		fmt.Fprintf(&b, "ENV %s=%s\n", k, quote(v))
	}
	if h := opts.Healthcheck; h != nil {
		b.WriteString("HEALTHCHECK")
		for _, o := range []struct {
			flag string
			d    time.Duration
		}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start-period", h.StartPeriod}} {
			if o.d > 0 {
				fmt.Fprintf(&b, " --%s=%s", o.flag, o.d)
			}
		}
		if h.Retries > 0 {
			fmt.Fprintf(&b, " --retries=%d", h.Retries)
		}
		fmt.Fprintf(&b, " CMD %s\n", jsonArray(h.Cmd))
	}
	fmt.Fprintf(&b, "ENTRYPOINT %s\n", jsonArray([]string{"/" + name}))
	return b.String()
}

func jsonArray(s []string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// quote quotes s for a Dockerfile ENV value, with no variable expansion.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`)
	return `"` + r.Replace(s) + `"`
}

// pkgPath is the package BuildImage compiles for name.
func pkgPath(name string) string {
	if strings.Contains(name, "/") {
		return "./" + name
	}
	return "./cmd/" + name
}

// compile builds the package of name once per process and returns the
// binary's path.
func compile(name string) (string, error) {
	binMu.Lock()
	e := bins[name]
	if e == nil {
		e = &binEntry{}
		bins[name] = e
	}
	binMu.Unlock()

	e.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			e.err = err
			return
		}
		binOnce.Do(func() { binDir, binDirErr = os.MkdirTemp("", "wharf-test-bin-") })
		if binDirErr != nil {
			e.err = binDirErr
			return
		}
		dir := filepath.Join(binDir, strings.ReplaceAll(name, "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			e.err = err
			return
		}
		out := filepath.Join(dir, path.Base(name))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkgPath(name))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if b, err := cmd.CombinedOutput(); err != nil {
			e.err = fmt.Errorf("go build %s: %v\n%s", pkgPath(name), err, b)
			return
		}
		e.path = out
	})
	return e.path, e.err
}

func removeBinaries() {
	binMu.Lock()
	defer binMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// moduleRoot finds the directory of this module's go.mod above the working
// directory (a test runs in its package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			if bytes.Contains(b, []byte("module github.com/wharflb/wharf\n")) {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of github.com/wharflb/wharf not found above the working directory")
		}
		dir = parent
	}
}

// buildImage sends a context of the Dockerfile and the binary to the
// engine's classic builder and waits for the image.
func buildImage(cli *client.Client, tag, name, bin, df string) error {
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}

	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df)), ModTime: st.ModTime()})
		if err == nil {
			_, err = io.WriteString(tw, df)
		}
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: st.Size(), ModTime: st.ModTime()})
		}
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	resp, err := cli.ImageBuild(ctx, pr, build.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Labels:      map[string]string{Label: runID},
		Version:     build.BuilderV1,
	})
	if err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	// The answer is a stream of JSON messages; a failed step is reported
	// in one of them, not in the HTTP status.
	dec := json.NewDecoder(resp.Body)
	var log strings.Builder
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("build %s: reading the engine's answer: %w", tag, err)
		}
		log.WriteString(msg.Stream)
		if msg.Error != "" || msg.ErrorDetail.Message != "" {
			return fmt.Errorf("build %s: %s %s\n%s", tag, msg.Error, msg.ErrorDetail.Message, log.String())
		}
	}
}
