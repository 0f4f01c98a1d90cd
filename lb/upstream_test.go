package lb

import (
	"strings"
	"testing"
	"time"
)

func TestParseUpstream(t *testing.T) {
	tests := []struct {
		spec    string
		want    Backend
		wantErr string
	}{
		{spec: "127.0.0.1:6969", want: Backend{ID: "static:127.0.0.1:6969", Name: "127.0.0.1:6969", Service: "default", Network: "tcp", Addr: "127.0.0.1:6969", Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second}},
		{spec: "backend1.example.com:80,weight=5", want: Backend{ID: "static:backend1.example.com:80", Name: "backend1.example.com:80", Service: "default", Network: "tcp", Addr: "backend1.example.com:80", Weight: 5, MaxFails: 1, FailTimeout: 10 * time.Second}},
		{spec: "127.0.0.1:8080,max_fails=3,fail_timeout=30s,service=api", want: Backend{ID: "static:127.0.0.1:8080", Name: "127.0.0.1:8080", Service: "api", Network: "tcp", Addr: "127.0.0.1:8080", Weight: 1, MaxFails: 3, FailTimeout: 30 * time.Second}},
		{spec: "unix:/tmp/backend3", want: Backend{ID: "static:unix:/tmp/backend3", Name: "unix:/tmp/backend3", Service: "default", Network: "unix", Addr: "/tmp/backend3", Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second}},
		{spec: "[::1]:81,backup,fail_timeout=5", want: Backend{ID: "static:[::1]:81", Name: "[::1]:81", Service: "default", Network: "tcp", Addr: "[::1]:81", Weight: 1, Backup: true, MaxFails: 1, FailTimeout: 5 * time.Second}},
		{spec: "localhost", wantErr: "want HOST:PORT"},
		{spec: "localhost:99999", wantErr: "port"},
		{spec: "localhost:80,weight=0", wantErr: "bad weight"},
		{spec: "localhost:80,weight=abc", wantErr: "bad weight"},
		{spec: "localhost:80,fail_timeout=soon", wantErr: "bad fail_timeout"},
		{spec: "localhost:80,max_fails=-1", wantErr: "bad max_fails"},
		{spec: "localhost:80,colour=blue", wantErr: "unknown option"},
		{spec: "unix:relative.sock", wantErr: "absolute path"},
		// Parsed as the labels are.
		{spec: "127.0.0.1:82,backup=t,fail_timeout=1m30s,weight=2,weight=3", want: Backend{ID: "static:127.0.0.1:82", Name: "127.0.0.1:82", Service: "default", Network: "tcp", Addr: "127.0.0.1:82", Weight: 3, Backup: true, MaxFails: 1, FailTimeout: 90 * time.Second}},
		{spec: "127.0.0.1:83, backup=off , service=Web_2", want: Backend{ID: "static:127.0.0.1:83", Name: "127.0.0.1:83", Service: "Web_2", Network: "tcp", Addr: "127.0.0.1:83", Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second}},
		{spec: "localhost:80,weight=1001", wantErr: `bad weight "1001": want an integer from 1 to 1000`},
		{spec: "localhost:80,backup=maybe", wantErr: `bad backup "maybe"`},
		{spec: "localhost:80,service=my api", wantErr: `bad service "my api"`},
		{spec: "localhost:80,service=", wantErr: `bad service ""`},
		{spec: "localhost:80,fail_timeout=99999999999999", wantErr: `bad fail_timeout "99999999999999"`},
		{spec: "localhost:80,weight=0,max_fails=x", wantErr: `bad weight "0": want an integer from 1 to 1000; bad max_fails "x"`},
		{spec: "localhost:80,path=/api", wantErr: `unknown option "path" (want weight=N,backup,max_fails=N,fail_timeout=D,service=NAME)`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseUpstream(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Key() != tt.want.Key() || got.Name != tt.want.Name || got.Service != tt.want.Service ||
				got.Weight != tt.want.Weight || got.Backup != tt.want.Backup || got.MaxFails != tt.want.MaxFails ||
				got.FailTimeout != tt.want.FailTimeout {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
