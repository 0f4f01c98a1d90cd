package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// The gzip load: every proxy compresses webtest's 10 KiB JSON sample
// (action=sample) at gzip level 1 for a client that accepts gzip.
const (
	gzipPath       = "/webtest?action=sample&size=10240"
	gzipSampleSize = 10240
	gzipHeader     = "Accept-Encoding: gzip"
)

// checkGzip makes sure p compresses the sample: an answer that arrived
// uncompressed would make the proxy look cheap for the wrong reason.
func checkGzip(ctx context.Context, p target) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+gzipPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	defer resp.Body.Close()
	wire, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
		return fmt.Errorf("%s: %s with Content-Encoding %q: the proxy does not compress the sample", p.Name, resp.Status, resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(wire))
	if err != nil {
		return fmt.Errorf("%s: answer is not gzip: %w", p.Name, err)
	}
	body, err := io.ReadAll(zr)
	var v struct{ IsSuccess bool }
	if err != nil || len(body) != gzipSampleSize || json.Unmarshal(body, &v) != nil || !v.IsSuccess {
		return fmt.Errorf("%s: the answer decompresses to %d bytes (%v), not webtest's %d-byte sample", p.Name, len(body), err, gzipSampleSize)
	}
	fmt.Fprintf(os.Stderr, "%s at %s compresses the %d-byte sample to %d bytes\n", p.Name, p.Addr, len(body), len(wire))
	return nil
}
