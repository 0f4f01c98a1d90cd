package proxy

import (
	"errors"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// localShortage reports whether err is wharf's own lack of a resource (no
// file descriptor for a connection, no socket buffer memory) rather than a
// fault of the peer it was reaching. Such an attempt is not counted
// against the peer, whose passive health would otherwise take healthy
// backends out for wharf's shortage, and the request is answered 503
// without trying other peers, which would fail the same way.
func localShortage(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// floodEvery bounds how often a condition that comes in floods (a
// shortage, the connection cap, failing accepts) is logged.
const floodEvery = 10 * time.Second

// logEvery lets one log line through per floodEvery. Safe for concurrent
// use; the zero value is ready.
type logEvery struct{ last atomic.Int64 } // unix nanoseconds of the last line

// due reports whether a line may be logged now, and if so counts it.
func (l *logEvery) due() bool {
	now := time.Now().UnixNano()
	last := l.last.Load()
	return now-last >= int64(floodEvery) && l.last.CompareAndSwap(last, now)
}

// shortageLog says at most once per floodEvery that wharf lacked a
// resource, with how many requests it refused since it last said so.
// Safe for concurrent use.
type shortageLog struct {
	every   logEvery
	pending atomic.Uint64
}

func (l *shortageLog) note(log zerolog.Logger, err error) {
	n := l.pending.Add(1)
	if !l.every.due() {
		return
	}
	l.pending.Add(-n)
	log.Error().Err(err).Uint64("requests_refused", n).
		Msg("wharf is short of file descriptors or memory: answering 503 without counting it against the peers; raise the limit (ulimit -n) or lower --max-conns")
}
