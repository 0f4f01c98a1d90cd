package proxy

import "sync"

// Request bodies kept for replay (see Config.RetryBodyLimit) are held
// against one budget for the whole process, Config.RetryBufferBudget, so
// that many clients sending bodies slowly cannot make wharf hold one full
// retry buffer each. Memory is reserved as a body arrives and its buffer
// grows, not for its announced length: a client that announced 64 KiB and
// sent 1 KiB holds a small buffer. When a reservation fails, the body is
// streamed to the peer instead, as a body over the limit is, and the
// request is not retried.

// reserveRetry takes n bytes from the budget; it reports false, taking
// nothing, when they would exceed it.
func (s *Stats) reserveRetry(n, budget int64) bool {
	if n <= 0 {
		return true
	}
	if s.RetryBuffered.Add(n) > budget {
		s.RetryBuffered.Add(-n)
		s.RetryBufferExhausted.Add(1)
		return false
	}
	return true
}

// releaseRetry gives back n bytes taken by reserveRetry.
func (s *Stats) releaseRetry(n int64) {
	if n > 0 {
		s.RetryBuffered.Add(-n)
	}
}

// replayStep is the unit in which the fast path reserves a body's bytes
// while they fit its first buffer: fewer reservations for a body that
// arrives in many reads.
const replayStep = 4 << 10

// The fast path keeps a body after the request head in its output buffer,
// which starts at fastBufSize and grows through these classes: a size
// doubling from 32 KiB, plus room for a usual head, so that a body of the
// default 64 KiB limit fits the 68 KiB class. Each class has its pool, so
// a grown buffer is reused rather than allocated; larger bodies (a raised
// --retry-body-limit) get buffers of their own.
const (
	replayHeadRoom   = 4 << 10
	replayClasses    = 6 // 32 KiB up to 1 MiB of body
	replayClassFirst = 2 * fastBufSize
)

var replayPools [replayClasses]sync.Pool

// replayClassSize is the capacity of class i.
func replayClassSize(i int) int { return replayClassFirst<<i + replayHeadRoom }

// sizedPool is the pool of buffers of capacity size, nil for a size of no
// pool. The 68 KiB class is the size of the buffer for a large head
// (fastBigSize): both share its pool.
func sizedPool(size int) *sync.Pool {
	switch size {
	case fastBufSize:
		return &smallBufs
	case fastBigSize:
		return &bigBufs
	case headBufSize:
		return &headBufs
	}
	for i := 0; i < replayClasses; i++ {
		if size == replayClassSize(i) {
			return &replayPools[i]
		}
	}
	return nil
}

// replayBufSize is the capacity of the buffer getReplayBuf(n) returns:
// the smallest class that holds n, or n beyond the largest class.
func replayBufSize(n int) int {
	for i := 0; i < replayClasses; i++ {
		if size := replayClassSize(i); n <= size {
			return size
		}
	}
	return n
}

// getReplayBuf returns a buffer of replayBufSize(n) bytes.
func getReplayBuf(n int) *[]byte {
	size := replayBufSize(n)
	if p := sizedPool(size); p != nil {
		if b, ok := p.Get().(*[]byte); ok {
			return b
		}
	}
	b := make([]byte, size)
	return &b
}
