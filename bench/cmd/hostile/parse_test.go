package main

import (
	"strings"
	"testing"
)

func TestParseSockets(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 0001A2B0:00000000 01:00000014 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D431 0100007F:1F90 08 00000000:00000010 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
`
	socks, err := parseSockets(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	want := []sock{
		{local: 8080, remote: 0, state: 0x0A},
		{local: 8080, remote: 54321, state: tcpEstablished, sendQueue: 0x1A2B0},
		{local: 54321, remote: 8080, state: tcpCloseWait},
	}
	if len(socks) != len(want) {
		t.Fatalf("got %d sockets, want %d: %+v", len(socks), len(want), socks)
	}
	for i := range want {
		if socks[i] != want[i] {
			t.Errorf("socket %d: %+v, want %+v", i, socks[i], want[i])
		}
	}
}

func TestParseMetrics(t *testing.T) {
	page := `# HELP wharf_peers Peers by service and state.
# TYPE wharf_peers gauge
wharf_peers{service="a",state="down"} 1
wharf_peers{service="a",state="ready"} 2
wharf_peers{service="b",state="down"} 2
wharf_peer_failures_total{address="1.2.3.4:80",container="x",service="a"} 3
wharf_retry_buffer_bytes 69632
`
	m, err := parseMetrics(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wharf_peers", []string{`state="down"`}, 3},
		{"wharf_peers", nil, 5},
		{"wharf_peer", nil, 0}, // a prefix of a name is not the name
		{"wharf_peer_failures_total", nil, 3},
		{"wharf_retry_buffer_bytes", nil, 69632},
	} {
		if got := m.sum(tc.name, tc.labels...); got != tc.want {
			t.Errorf("sum(%s, %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}
