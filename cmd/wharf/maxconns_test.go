package main

import (
	"io"
	"strings"
	"testing"
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
