package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestMaxConnsFlag(t *testing.T) {
	c, err := parseConfig([]string{"--upstream", "127.0.0.1:1", "--max-conns", "500"}, func(string) string { return "" }, io.Discard)
	if err != nil || c.MaxConns != 500 {
		t.Fatalf("--max-conns 500: %+v, %v", c, err)
	}
	if _, err := parseConfig([]string{"--upstream", "127.0.0.1:1", "--max-conns", "-1"}, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "--max-conns") {
		t.Fatalf("--max-conns -1: err %v, want one naming the flag", err)
	}
	for fds, want := range map[int64]int{20000: 9968, 1024: 480, 64: 1} {
		if got := maxConnsFor(fds); got != want {
			t.Errorf("maxConnsFor(%d) = %d, want %d", fds, got, want)
		}
	}
}

func TestTimeoutFlags(t *testing.T) {
	c, err := parseConfig([]string{"--upstream", "127.0.0.1:1", "--send-timeout", "5s", "--upstream-read-timeout", "2m",
		"--client-body-timeout", "10s", "--upstream-connect-timeout", "500ms"}, func(string) string { return "" }, io.Discard)
	if err != nil || c.SendTimeout != 5*time.Second || c.UpstreamReadTimeout != 2*time.Minute ||
		c.ClientBodyTimeout != 10*time.Second || c.UpstreamConnectTimeout != 500*time.Millisecond {
		t.Fatalf("config %+v, err %v", c, err)
	}
	for _, flag := range []string{"--send-timeout", "--upstream-read-timeout", "--client-body-timeout", "--upstream-connect-timeout"} {
		_, err := parseConfig([]string{"--upstream", "127.0.0.1:1", flag, "0s"}, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s 0s: err %v, want one naming the flag", flag, err)
		}
	}
}
