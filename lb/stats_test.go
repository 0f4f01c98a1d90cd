package lb

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	var h Histogram
	h.Observe(0)                    // first bucket
	h.Observe(3 * time.Millisecond) // the 0.005 bucket
	h.Observe(time.Hour)            // +Inf
	cum, count, sum := h.Snapshot()
	buckets := LatencyBuckets()
	if len(cum) != len(buckets) {
		t.Fatalf("got %d cumulative counts for %d buckets", len(cum), len(buckets))
	}
	if count != 3 || cum[0] != 1 || cum[len(cum)-1] != 2 {
		t.Errorf("got count %d, cumulative %v; want 3, first 1, last 2 (the hour is only in +Inf)", count, cum)
	}
	for i, b := range buckets {
		want := uint64(1)
		if b >= 0.005 {
			want = 2
		}
		if cum[i] != want {
			t.Errorf("bucket %g: got %d, want %d", b, cum[i], want)
		}
	}
	if want := (time.Hour + 3*time.Millisecond).Seconds(); sum != want {
		t.Errorf("got sum %g, want %g", sum, want)
	}
}

// LatencyBuckets cannot be changed from outside: Histogram's size is fixed by
// the package's own array.
func TestLatencyBucketsIsACopy(t *testing.T) {
	b := LatencyBuckets()
	b[0] = 99
	_ = append(b, 120)
	if got := LatencyBuckets()[0]; got == 99 {
		t.Fatal("changing the returned slice changed the buckets")
	}
}
