package proxy

import (
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// TestLargeBodiesOverHTTP2InBoundedMemory: a 1 GiB request body and a
// 1 GiB answer go through HTTP/2 with the process's heap bounded, as over
// HTTP/1.1.
func TestLargeBodiesOverHTTP2InBoundedMemory(t *testing.T) {
	size, peer, received := largeBodyPeer(t)
	url, _, _ := startFastTLS(t, Config{}, fastHooks{}, peer.backend(1))
	client := h2Client(t)
	client.Timeout = 0
	var peak atomic.Uint64
	stop := make(chan struct{})
	go watchHeap(&peak, stop)
	defer close(stop)

	start := time.Now()
	res, err := client.Post(url+"/upload", "application/octet-stream", &countingReader{left: size})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != 200 || received.Load() != size {
		t.Fatalf("upload: %s %d, peer got %d of %d bytes", res.Proto, res.StatusCode, received.Load(), size)
	}
	up := time.Since(start)
	start = time.Now()
	res, err = client.Get(url + "/download")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || err != nil || n != size {
		t.Fatalf("download: %s, %d of %d bytes, %v", res.Proto, n, size, err)
	}
	down := time.Since(start)
	if p := peak.Load(); p > 64<<20 {
		t.Fatalf("heap peaked at %d MiB while streaming %d MiB", p>>20, size>>20)
	}
	t.Logf("streamed %d MiB each way over HTTP/2 (up %v, down %v); heap peak %d MiB",
		size>>20, up.Round(time.Millisecond), down.Round(time.Millisecond), peak.Load()>>20)
}
