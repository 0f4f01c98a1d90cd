package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/wharflb/wharf/internal/testutil"
)

// --gzip serves through the fast engine, at the level --gzip-level says.
func TestGzipServesThroughFastEngine(t *testing.T) {
	var body strings.Builder
	for i := 0; body.Len() < 64<<10; i++ {
		body.WriteString(`{"id":` + strconv.Itoa(i*7919%10007) + `,"name":"webtest` + strconv.Itoa(i%13) + `","ok":true},`)
	}
	peer := testutil.NewBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body.String())
	})
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	sizes := map[string]int{}
	for _, level := range []string{"1", "9"} {
		in := startWharf(t, "--upstream", peer.Addr(), "--gzip", "--gzip-level", level)
		started := waitLog(t, in.logs, "info", "wharf started")
		if !strings.Contains(started, `"engine":"fast"`) {
			t.Fatalf("--gzip started another engine: %s", started)
		}
		req, _ := http.NewRequest("GET", in.url+"/data", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("level %s: Content-Encoding %q, %v", level, res.Header.Get("Content-Encoding"), err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil || string(plain) != body.String() {
			t.Fatalf("level %s: decompressed %d bytes, %v", level, len(plain), err)
		}
		sizes[level] = len(b)
	}
	if sizes["9"] >= sizes["1"] {
		t.Fatalf("level 9 gave %d bytes, level 1 %d: --gzip-level not applied", sizes["9"], sizes["1"])
	}
	t.Logf("%d bytes compressed to %d at level 1, %d at level 9", body.Len(), sizes["1"], sizes["9"])
}
