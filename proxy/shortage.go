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

// shortageEvery bounds how often a shortage is logged: it comes in floods.
const shortageEvery = 10 * time.Second

// shortageLog says at most once per shortageEvery that wharf lacked a
// resource, with how many requests it refused since it last said so.
// Safe for concurrent use.
type shortageLog struct {
	last    atomic.Int64 // unix nanoseconds of the last line
	pending atomic.Uint64
}

func (l *shortageLog) note(log zerolog.Logger, err error) {
	n := l.pending.Add(1)
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(shortageEvery) || !l.last.CompareAndSwap(last, now) {
		return
	}
	l.pending.Add(-n)
	log.Error().Err(err).Uint64("requests_refused", n).
		Msg("wharf is short of file descriptors or memory: answering 503 without counting it against the peers; raise the limit (ulimit -n) or lower --max-conns")
}
