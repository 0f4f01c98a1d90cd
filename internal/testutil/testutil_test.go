package testutil

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func TestLogBufferLines(t *testing.T) {
	var l LogBuffer
	io.WriteString(&l, `{"level":"info","container":"web1","message":"peer added"}`+"\n")
	io.WriteString(&l, "not json\n")
	io.WriteString(&l, `{"level":"warn","container":"web2","message":"container skipped"}`+"\n")
	io.WriteString(&l, `{"level":"info","container":"web2","message":"peer added"}`+"\n")

	if got := l.Lines("info", "peer added"); len(got) != 2 || got[1].Fields["container"] != "web2" {
		t.Errorf("Lines(info, peer added) = %+v, want the two info lines, web1 then web2", got)
	}
	if got := l.Lines("", "web2"); len(got) != 2 || got[0].Level != "warn" || got[0].Message != "container skipped" {
		t.Errorf(`Lines("", web2) = %+v, want web2's warn line, then its info line`, got)
	}
	if got := l.Lines("error"); len(got) != 0 {
		t.Errorf("Lines(error) = %+v, want none", got)
	}
	if got, want := Raws(l.Lines("warn")), `{"level":"warn","container":"web2","message":"container skipped"}`+"\n"; got != want {
		t.Errorf("Raws = %q, want %q", got, want)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Minute, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("Poll returned before cond held, or called it %d times, want 3", n)
	}
	if Poll(0, func() bool { return false }) {
		t.Error("Poll reported a condition that never held")
	}
}

func TestFreeAddrRefuses(t *testing.T) {
	c, err := net.Dial("tcp", FreeAddr(t))
	if err == nil {
		c.Close()
		t.Fatal("a connection to FreeAddr was accepted")
	}
}

func TestBackendAnswersItsName(t *testing.T) {
	b := NewBackend(t, "web1", nil)
	res, err := http.Get("http://" + b.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "web1" || b.Hits.Load() != 1 {
		t.Errorf("answer %q after %d hits, want web1 after 1", body, b.Hits.Load())
	}
}

func TestLogBufferWaitWakesOnWrite(t *testing.T) {
	var l LogBuffer
	started := make(chan struct{})
	go func() {
		<-started
		io.WriteString(&l, `{"level":"info","message":"one"}`+"\n")
		io.WriteString(&l, `{"level":"info","message":"two"}`+"\n")
	}()
	close(started)
	if got := l.Wait(t, 2, time.Minute, "info"); len(got) != 2 || got[1].Message != "two" {
		t.Fatalf("Wait = %+v, want the two lines", got)
	}
}

// TestLogBufferUntilWakesOnWrite checks that Until looks again at each
// write: the condition changes just before a line is written, and a minute
// would pass before a timer fired.
func TestLogBufferUntilWakesOnWrite(t *testing.T) {
	var l LogBuffer
	var state atomic.Int64
	looked := make(chan struct{}, 1)
	go func() {
		<-looked
		state.Store(1)
		io.WriteString(&l, `{"level":"info","message":"changed"}`+"\n")
	}()
	ok := l.Until(time.Minute, func() bool {
		select {
		case looked <- struct{}{}:
		default:
		}
		return state.Load() == 1
	})
	if !ok {
		t.Fatal("Until false after the change was logged")
	}
}
